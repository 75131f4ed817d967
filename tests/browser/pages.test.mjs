// Every page a person reaches besides the analytics views (tests/browser/charts.test.mjs scans
// those): signed out (landing, sign in, sign up, a public link's pages, 404) and signed in as
// the platform admin (projects, setup, the dashboard's realtime panel with a live feed,
// reports list/new/detail/view, settings, account, the organization's and the platform's logs,
// users and public links, 404). Each fits a 390 px phone without horizontal scrolling, passes
// an axe-core scan with no violations (light at both widths, dark at 1280 px) and is
// photographed at 1280 and 390 px into SI_SHOTS. Run by tests/e2e/browser_pages.rs (SI_URL,
// SI_EMAIL, SI_PASSWORD, SI_PROJECT, SI_REPORT, SI_PUBLIC_BASE, SI_SHOTS, SI_KEY).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { logIn, useBrowser } from './lib.mjs';

const { SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT, SI_REPORT, SI_PUBLIC_BASE, SI_SHOTS, SI_KEY } = process.env;
assert.ok(SI_URL && SI_EMAIL && SI_PROJECT && SI_REPORT && SI_PUBLIC_BASE && SI_SHOTS && SI_KEY, 'set by tests/e2e/browser_pages.rs');
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const base = `/projects/${SI_PROJECT}`;
const browser = useBrowser();

/** Axe's violations on the page, one line each (empty when none). */
async function violations(page) {
  if (!(await page.evaluate(() => !!window.axe))) await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
}

/**
 * Opens each [name, path, status, ready?] at 1280 and 390 px in light and at 1280 px in dark:
 * no horizontal scroll, no axe violation, a screenshot of the light ones. `ready(page)` waits
 * for what the page fills in by script.
 */
async function scan(page, pages) {
  mkdirSync(SI_SHOTS, { recursive: true });
  const problems = [];
  for (const [name, path, status, ready] of pages) {
    for (const [width, scheme] of [[1280, 'light'], [390, 'light'], [1280, 'dark']]) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.setViewportSize({ width, height: 900 });
      const r = await page.goto(`${SI_URL}${path}`);
      assert.equal(r.status(), status, path);
      // Pages with a realtime stream never go network-idle: a short wait is enough for them.
      await page.waitForLoadState('networkidle', { timeout: 5_000 }).catch(() => {});
      if (ready) await ready(page);
      const sw = await page.evaluate(() => document.documentElement.scrollWidth);
      if (sw > width) problems.push(`${name} at ${width} px (${scheme}) is ${sw} px wide`);
      for (const v of await violations(page)) problems.push(`${name} at ${width} px (${scheme}): ${v}`);
      if (scheme === 'light') await page.screenshot({ path: `${SI_SHOTS}/${name}-${width}.png`, fullPage: true });
    }
  }
  assert.deepEqual(problems, []);
}

test('signed-out pages and a public link fit a phone and pass axe-core', async () => {
  const context = await browser.newContext({ locale: 'en-US' });
  const page = await context.newPage();
  // Generous: a loaded machine on FerretDB builds a public dashboard's rollups slowly.
  page.setDefaultTimeout(45_000);
  await scan(page, [
    ['landing', '/', 200],
    ['login', '/auth/login', 200],
    ['register', '/auth/register', 200],
    ['forgot', '/auth/forgot', 200],
    ['404-signed-out', '/no/such/page', 404],
    ['public-dashboard', `${SI_PUBLIC_BASE}/dashboard?timeframe=30d&compare=1`, 200],
    ['public-pageviews', `${SI_PUBLIC_BASE}/pageviews?timeframe=30d`, 200],
    ['public-events', `${SI_PUBLIC_BASE}/events?timeframe=30d`, 200],
    ['public-errors', `${SI_PUBLIC_BASE}/errors?timeframe=30d`, 200],
    ['public-performance', `${SI_PUBLIC_BASE}/performance?timeframe=30d`, 200],
  ]);
  await context.close();
});

test('signed-in pages, the realtime panel and the reports fit a phone and pass axe-core', async () => {
  const context = await browser.newContext({ locale: 'en-US' });
  const page = await context.newPage();
  page.setDefaultTimeout(45_000);
  const failures = [];
  page.on('pageerror', (e) => failures.push(`script error: ${e.message}`));
  await logIn(page, SI_URL, SI_EMAIL, SI_PASSWORD);
  // A page view now, so the realtime panel shows a visitor and a line in its feed.
  const liveFeed = async (p) => {
    const r = await p.request.post(`${SI_URL}/v1/pageviews`, {
      headers: { authorization: `Bearer ${SI_KEY}` }, data: [{ url: 'https://shop.example/live', clientId: 'live-1' }],
    });
    assert.equal(r.status(), 201);
    await p.waitForSelector('#live-feed li');
  };
  await scan(page, [
    ['projects', '/projects', 200],
    ['new-project', '/projects/new', 200],
    ['setup', `${base}/setup`, 200],
    ['realtime', `${base}/dashboard?timeframe=24h`, 200, liveFeed],
    ['reports', `${base}/reports`, 200],
    ['report-new', `${base}/reports/new`, 200],
    ['report-detail', `${base}/reports/${SI_REPORT}`, 200],
    ['report-view', `${base}/reports/${SI_REPORT}/view`, 200],
    ['settings', `${base}/settings`, 200],
    ['account', '/account', 200],
    ['org-logs', '/org/logs', 200],
    ['org-users', '/org/users', 200],
    ['org-public-links', '/org/public-links', 200],
    ['admin', '/admin', 200],
    ['admin-logs', '/admin/logs', 200],
    ['admin-users', '/admin/users', 200],
    ['admin-system', '/admin/system', 200],
    ['404', '/no/such/page', 404],
  ]);
  assert.deepEqual(failures, []);
  await context.close();
});
