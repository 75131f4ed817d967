// Visits on the dashboard in headless Chromium. Run by tests/e2e/visits.rs, which seeds three
// visits (a: /landing → /pricing → /signup; b: /landing alone; c: /blog → /pricing) and one page
// view without a session, and passes SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT and
// SI_PUBLIC_BASE (a public link's prefix).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { logIn, useBrowser } from './lib.mjs';

const { SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT, SI_PUBLIC_BASE } = process.env;
assert.ok(SI_URL && SI_EMAIL && SI_PROJECT && SI_PUBLIC_BASE, 'set by tests/e2e/visits.rs');

const browser = useBrowser();
const field = (page, f) => page.textContent(`[data-field="${f}"]`);
const cells = (page, table) => page.$$eval(`#bd-${table} tbody tr:not([hidden])`, (rows) => rows.map((r) => r.cells[0].textContent.trim()));

test('visit KPIs show beside the previous period; an entry-page row filters the dashboard', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  await logIn(page, SI_URL, SI_EMAIL, SI_PASSWORD);
  await page.goto(`${SI_URL}/projects/${SI_PROJECT}/dashboard?timeframe=24h`);
  assert.equal(await field(page, 'visits.visits'), '3');
  assert.equal(await field(page, 'visits.bounceRate'), '33%');
  assert.equal(await field(page, 'visits.avgDurationMs'), '2 min 0 s');
  assert.equal(await field(page, 'visits.viewsPerVisit'), '2.00');
  assert.match(await page.textContent('[data-delta="visits"]'), /up from 0 in the previous period/);
  assert.deepEqual(await cells(page, 'entryPage'), ['/landing', '/blog']);
  assert.match(await page.textContent('#bd-entryPage tbody tr'), /66\.7%/, 'share of visits');

  // Click the entry page /landing: the URL, the figures and a removable chip follow.
  await Promise.all([page.waitForURL(/entryPage=%2Flanding/), page.click('#bd-entryPage a:text-is("/landing")')]);
  assert.equal(await field(page, 'pageViews.totalViews'), '4');
  assert.equal(await field(page, 'visits.visits'), '2');
  assert.equal(await field(page, 'visits.bounceRate'), '50%');
  assert.deepEqual(await cells(page, 'exitPage'), ['/landing', '/signup']);
  assert.match(await page.textContent('#filter-chips'), /Entry page:\s*\/landing/);
  // A refresh from the JSON writes the same figures as the server.
  await page.evaluate(() => window.siDashboard.refresh());
  await page.waitForFunction(() => /Updated/.test(document.getElementById('refresh-status').textContent));
  assert.equal(await field(page, 'visits.bounceRate'), '50%');
  assert.equal(await field(page, 'visits.avgDurationMs'), '2 min 30 s');
  assert.match(await page.textContent('#bd-entryPage tbody tr'), /100\.0%/);
  // Back: unfiltered again.
  await page.goBack();
  await page.waitForURL((u) => !/entryPage=/.test(u.search));
  assert.equal(await field(page, 'visits.visits'), '3');
  await context.close();
});

test('a public link filters by exit page the same way', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(`${SI_URL}${SI_PUBLIC_BASE}/dashboard?timeframe=24h`);
  await Promise.all([page.waitForURL(/exitPage=%2Fpricing/), page.click('#bd-exitPage a:text-is("/pricing")')]);
  assert.ok(page.url().startsWith(`${SI_URL}${SI_PUBLIC_BASE}/dashboard?`), page.url());
  assert.equal(await field(page, 'pageViews.totalViews'), '2');
  assert.equal(await field(page, 'visits.visits'), '1');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page overflows by ${overflow}px at 390 px`);
  await context.close();
});
