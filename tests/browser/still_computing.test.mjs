// A view still being computed, in a real browser (headless Chromium, playwright-core), against
// the real server started by tests/e2e/browser_dashboard.rs with VIEW_WAIT_MS=0, so a view not
// cached yet answers 503 at first (SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT; SI_SHOTS, when
// set, gets screenshots): the cold dashboard shows the "Still computing" page, in the light and
// the dark theme, without axe violations, and the page reloads itself after Retry-After into the
// dashboard the computation meanwhile produced; a third cold view's page stops reloading when
// asked.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { logIn, useBrowser } from './lib.mjs';

const { SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT, SI_SHOTS } = process.env;
assert.ok(SI_URL && SI_EMAIL && SI_PASSWORD && SI_PROJECT, 'set by tests/e2e/browser_dashboard.rs');
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const browser = useBrowser();

/** The relative luminance of a computed `rgb(…)` colour. */
function luminance(rgb) {
  const [r, g, b] = rgb.match(/\d+(\.\d+)?/g).slice(0, 3).map((c) => {
    const v = Number(c) / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

test('a cold dashboard says it is still being computed, then reloads itself into the dashboard', async () => {
  // One cold view per theme (7 and 30 days): each is computed once, on its first request.
  for (const [scheme, timeframe] of [['light', '7d'], ['dark', '30d']]) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', colorScheme: scheme });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    const failures = [];
    page.on('pageerror', (e) => failures.push(String(e)));
    await logIn(page, SI_URL, SI_EMAIL, SI_PASSWORD);
    const url = `${SI_URL}/projects/${SI_PROJECT}/dashboard?timeframe=${timeframe}`;
    const first = await page.goto(url);
    // The reload timer starts once the page has loaded, so no reload comes sooner than this + 5 s.
    let since = Date.now();
    assert.equal(first.status(), 503, `${timeframe}: a cold view is not waited for`);
    assert.equal(first.headers()['retry-after'], '5');
    assert.equal((await page.textContent('main h1')).trim(), 'Still computing');
    assert.match(await page.textContent('#still-computing'), /still being computed/);
    assert.match(await page.textContent('[role=status]'), /reloads itself in 5 seconds/);
    assert.equal(await page.getAttribute('[role=status] a', 'href'), `/projects/${SI_PROJECT}/dashboard?timeframe=${timeframe}`);
    await page.evaluate(AXE);
    const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    const found = result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
    assert.deepEqual(found, [], `the still-computing page (${scheme}) has no axe violations`);
    // The theme's colours: a dark page in dark mode, a light one otherwise.
    const { text, background } = await page.evaluate(() => ({
      text: getComputedStyle(document.querySelector('#still-computing p')).color,
      background: getComputedStyle(document.body).backgroundColor,
    }));
    if (scheme === 'dark') assert.ok(luminance(background) < 0.1 && luminance(text) > 0.5, `${text} on ${background}`);
    else assert.ok(luminance(background) > 0.8 && luminance(text) < 0.1, `${text} on ${background}`);
    if (SI_SHOTS) await page.screenshot({ path: `${SI_SHOTS}/still-computing-${scheme}.png` });
    assert.ok(await page.isVisible('#reload-stop'), 'the reload can be stopped');
    // The page reloads itself after Retry-After, again while the view is still being computed
    // (FerretDB under a busy machine may take longer than 5 s), until the computed view is there.
    const deadline = Date.now() + 120_000;
    for (let reloads = 0; ; reloads += 1) {
      const reloaded = await page.waitForResponse((r) => r.url() === url && r.request().isNavigationRequest(), { timeout: 20_000 });
      assert.ok(Date.now() - since >= 4_000, `reloaded after Retry-After, not at once (${Date.now() - since} ms)`);
      since = Date.now();
      if (reloaded.status() === 200) break;
      assert.equal(reloaded.status(), 503, `reload ${reloads}`);
      assert.ok(Date.now() < deadline, `still computing after ${reloads} reloads`);
    }
    await page.waitForSelector('.card.kpi');
    assert.equal(await page.$('#still-computing'), null);
    assert.deepEqual(failures, []);
    await context.close();
  }
});

test('the reload of a still-computing page can be stopped', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  await logIn(page, SI_URL, SI_EMAIL, SI_PASSWORD);
  const first = await page.goto(`${SI_URL}/projects/${SI_PROJECT}/dashboard?timeframe=24h`);
  assert.equal(first.status(), 503);
  await page.click('#reload-stop');
  assert.equal((await page.textContent('#reload-note')).trim(), 'Reloading stopped.');
  assert.ok(await page.isHidden('#reload-stop'));
  // "Reload now" is still there for when the person wants it.
  assert.equal(await page.getAttribute('[role=status] a', 'href'), `/projects/${SI_PROJECT}/dashboard?timeframe=24h`);
  await context.close();
});
