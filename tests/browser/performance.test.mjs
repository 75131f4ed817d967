// The performance page in a real browser (Debian's Chromium, headless, playwright-core): log in,
// open a project's performance page over seeded web vitals, check the score badge and the
// per-metric status, and that every trend chart is drawn (SVG) with its threshold lines. Run by
// tests/e2e/diagnostics_pages.rs, which seeds the data and passes SI_URL, SI_EMAIL, SI_PASSWORD,
// SI_PROJECT and the expected SI_SCORE.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chartDrawn, logIn, useBrowser } from './lib.mjs';

const { SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT, SI_SCORE } = process.env;
assert.ok(SI_URL && SI_EMAIL && SI_PROJECT && SI_SCORE, 'set by tests/e2e/diagnostics_pages.rs');

const browser = useBrowser();

test('the performance page shows the score and draws its trend charts', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const failures = [];
  page.on('response', (r) => { if (r.status() >= 400) failures.push(`${r.status()} ${r.url()}`); });
  page.on('pageerror', (e) => failures.push(`script error: ${e.message}`));

  await logIn(page, SI_URL, SI_EMAIL, SI_PASSWORD);
  await page.goto(`${SI_URL}/projects/${SI_PROJECT}/performance?timeframe=7d`);

  assert.equal((await page.textContent('#performance-score')).trim(), SI_SCORE);
  assert.match(await page.getAttribute('#performance-score', 'class'), /score good/, 'a score above 75 is good');
  assert.match(await page.textContent('#metric-lcp .status'), /Needs improvement/, 'LCP p75 3000 ms');
  assert.match(await page.textContent('#metric-ttfb .status'), /Needs improvement/, 'TTFB p75 1000 ms');
  assert.match(await page.textContent('#metric-cls .status'), /Good/);
  assert.equal((await page.textContent('#data-quality')).trim(), '100%');
  assert.match(await page.textContent('#thresholds'), /2500ms/);

  await page.waitForFunction(() => window.siDiagnostics && window.siDiagnostics.charts() === 5).catch((e) => { throw new Error(e.message + ' ' + JSON.stringify(failures)); });
  for (const id of ['chart-lcp', 'chart-cls', 'chart-fid', 'chart-ttfb']) {
    const p = await chartDrawn(page, id);
    assert.ok(p.w > 100 && p.h > 100, `${id} has a size: ${JSON.stringify(p)}`);
    assert.ok(p.marks > 0, `${id} is drawn: ${JSON.stringify(p)}`);
  }
  // The LCP chart's legend names the value and both threshold lines.
  const legend = await page.textContent('#chart-lcp .chart-legend');
  assert.match(legend, /LCP/);
  assert.match(legend, /Good ≤ 2,500 ms/);
  assert.match(legend, /Poor > 4,000 ms/);
  // INP was not measured: its box says so instead of drawing an empty chart.
  assert.match(await page.textContent('#chart-inp'), /No data in this timeframe/);

  // On a phone the charts shrink with their boxes and nothing overflows the page.
  await page.setViewportSize({ width: 375, height: 800 });
  await page.waitForFunction(() => document.querySelector('#chart-lcp svg').getBoundingClientRect().width <= 375);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling on a phone (overflow ${overflow}px)`);
  assert.deepEqual(failures, [], 'no asset request or script failed');
  if (process.env.SI_SCREENSHOT) await page.screenshot({ path: process.env.SI_SCREENSHOT, fullPage: true });
  await context.close();
});
