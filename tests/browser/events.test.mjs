// The events page in a real browser (Debian's Chromium, headless, playwright-core): log in, open
// a project's events page over seeded events, check the tables and the `$click` detail link,
// then ingest a new event through /v1 and let the page's own 30-second timer run (Playwright's
// clock) — the live refresh must show it without a reload. Run by tests/e2e/analytics_pages.rs,
// which seeds the data and passes SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT and SI_KEY.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chartDrawn, logIn, useBrowser } from './lib.mjs';

const { SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT, SI_KEY } = process.env;
assert.ok(SI_URL && SI_EMAIL && SI_PROJECT && SI_KEY, 'set by tests/e2e/analytics_pages.rs');

const browser = useBrowser();

test('the events page lists events and refreshes itself after new ingestion', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const failedRequests = [];
  page.on('response', (r) => { if (r.status() >= 400) failedRequests.push(`${r.status()} ${r.url()}`); });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  await logIn(page, SI_URL, SI_EMAIL, SI_PASSWORD);

  // Control the page's timers from here on, so the 30 s interval can be run without waiting.
  await page.clock.install();
  await page.goto(`${SI_URL}/projects/${SI_PROJECT}/events?timeframe=24h`);
  assert.equal(await page.textContent('#total-events'), '14');
  assert.equal(await page.locator('#recent tbody tr').count(), 10);
  assert.equal(await page.textContent('#recent-pagination'), 'Page 1 of 2 (14 occurrences)');
  assert.match(await page.textContent('#recent tbody tr:first-child'), /\$click/);
  const detailHref = await page.getAttribute('#top-events a:text-is("$click")', 'href');
  assert.equal(detailHref, `/projects/${SI_PROJECT}/events/%24click?timeframe=24h`);
  const chart = await chartDrawn(page, 'chart-events');
  assert.ok(chart.w > 100 && chart.h > 100 && chart.marks > 0, `the chart is drawn: ${JSON.stringify(chart)}`);
  assert.match(chart.label, / per hour, /, 'a 24-hour range is drawn in hours');

  // A new event arrives through the ingestion API…
  const r = await fetch(`${SI_URL}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${SI_KEY}` },
    body: JSON.stringify({ eventName: 'live_signal', properties: { note: '<img src=x onerror=alert(1)>' } }),
  });
  assert.equal(r.status, 201);
  assert.doesNotMatch(await page.textContent('#recent'), /live_signal/, 'not shown before the refresh');

  // …and the page's own timer picks it up 30 s later.
  await page.clock.runFor(30_000);
  await page.waitForFunction(() => /live_signal/.test(document.querySelector('#recent tbody tr').textContent));
  await page.waitForFunction(() => /Updated/.test(document.getElementById('live-status').textContent));
  assert.equal(await page.textContent('#recent-pagination'), 'Page 1 of 2 (15 occurrences)');
  assert.equal(await page.locator('#recent tbody tr').count(), 10);
  assert.equal(await page.locator('#recent img').count(), 0, 'properties are text, never markup');
  assert.match(await page.textContent('#recent tbody tr:first-child'), /<img src=x onerror=alert\(1\)>/);
  const liveLink = await page.getAttribute('#recent tbody tr:first-child a', 'href');
  assert.equal(liveLink, `/projects/${SI_PROJECT}/events/live_signal?timeframe=24h`);

  // Follow the `$click` link to the detail page.
  await Promise.all([page.waitForURL(/%24click/), page.click('#top-events a:text-is("$click")')]);
  assert.equal(await page.textContent('#event-name'), '$click');
  assert.match(await page.textContent('#property-schema'), /tag\s*string/);
  assert.deepEqual(failedRequests, [], 'no asset or data request failed');
  assert.deepEqual(errors, [], 'no script error');
  await context.close();
});
