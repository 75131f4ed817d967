// The dashboard in a real browser (Debian's Chromium, headless, playwright-core): log in, open a
// project's dashboard over seeded data, check the totals and that the charts are drawn, and that
// auto-refresh stops after three failed refreshes. Run by tests/e2e/browser_accounts.rs, which
// seeds the data and passes SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT and the expected figures.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chartDrawn, useBrowser } from './lib.mjs';

const { SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT, SI_VIEWS, SI_EVENTS, SI_ERRORS } = process.env;
assert.ok(SI_URL && SI_EMAIL && SI_PROJECT, 'set by tests/e2e/browser_accounts.rs');

const browser = useBrowser();

test('the dashboard shows the seeded totals and draws its charts', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const failedRequests = [];
  page.on('response', (r) => { if (r.status() >= 400) failedRequests.push(`${r.status()} ${r.url()}`); });

  await page.goto(`${SI_URL}/auth/login`);
  await page.fill('input[name=email]', SI_EMAIL);
  await page.fill('input[name=password]', SI_PASSWORD);
  await Promise.all([page.waitForURL(/\/projects$/), page.click('main button[type=submit]')]);
  await page.goto(`${SI_URL}/projects/${SI_PROJECT}/dashboard?timeframe=7d`);

  assert.equal(await page.textContent('[data-field="pageViews.totalViews"]'), SI_VIEWS);
  assert.equal(await page.textContent('[data-field="events.totalEvents"]'), SI_EVENTS);
  assert.equal(await page.textContent('[data-field="errors.totalErrors"]'), SI_ERRORS);
  assert.match(await page.textContent('#bd-page'), /\/pricing/);
  // Breakdowns: the seeded views carry no referrer, so all of them are "(direct)".
  const direct = await page.$$eval('#bd-referrer tbody tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  assert.deepEqual(direct[0], ['(direct)', SI_VIEWS, '100.0%'], 'referrer breakdown');
  // Every KPI compares with the previous period in words (the seeded data is all recent).
  assert.match(await page.textContent('[data-delta="views"]'), /up from 0 in the previous period/);
  assert.match(await page.textContent('[data-delta="score"]'), /nothing to compare/);

  // The charts are SVG (static/js/charts.js): each has a size and marks, and a 7-day range
  // is drawn in days.
  for (const id of ['chart-views', 'chart-events', 'chart-errors', 'chart-vitals']) {
    const c = await chartDrawn(page, id);
    assert.ok(c.w > 100 && c.h > 100, `${id} has a size: ${JSON.stringify(c)}`);
    assert.ok(c.marks > 0, `${id} is drawn: ${JSON.stringify(c)}`);
    assert.match(c.label, / per day, /, `${id} is in days`);
  }
  assert.deepEqual(failedRequests, [], 'no asset or data request failed');

  // A manual refresh updates from the JSON route; three failures in a row stop auto-refresh.
  await page.evaluate(() => window.siDashboard.refresh());
  await page.waitForFunction(() => /Updated/.test(document.getElementById('refresh-status').textContent));
  await page.route('**/dashboard/data**', (route) => route.fulfill({ status: 503, body: 'down' }));
  for (let i = 0; i < 3; i++) {
    await page.evaluate(() => window.siDashboard.refresh());
    await page.waitForFunction((n) => window.siDashboard.failures() === n, i + 1);
  }
  assert.equal(await page.isChecked('#auto-refresh'), false, 'auto-refresh turned itself off');
  assert.match(await page.textContent('#refresh-status'), /stopped after 3 failed refreshes/);
  if (process.env.SI_SCREENSHOT) await page.screenshot({ path: process.env.SI_SCREENSHOT, fullPage: true });
  await context.close();
});
