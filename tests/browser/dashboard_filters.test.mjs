// Click-to-filter on the dashboard in headless Chromium. Run by tests/e2e/browser_dashboard.rs,
// which seeds 6 page views from Germany (Firefox, news.example, six /blog/ pages) and 4 from
// France (Chrome, direct, /pricing), 3 events, and passes SI_URL, SI_EMAIL, SI_PASSWORD,
// SI_PROJECT and SI_PUBLIC_BASE (a public link's prefix).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { logIn, useBrowser } from './lib.mjs';

const { SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT, SI_PUBLIC_BASE } = process.env;
assert.ok(SI_URL && SI_EMAIL && SI_PROJECT && SI_PUBLIC_BASE, 'set by tests/e2e/browser_dashboard.rs');

const browser = useBrowser();
const views = (page) => page.textContent('[data-field="pageViews.totalViews"]');
const cells = (page, table) => page.$$eval(`#bd-${table} tbody tr:not([hidden])`, (rows) => rows.map((r) => r.cells[0].textContent.trim()));

test('a row click filters the whole dashboard; chips, back button, form and links follow', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  await logIn(page, SI_URL, SI_EMAIL, SI_PASSWORD);
  const dashboard = `${SI_URL}/projects/${SI_PROJECT}/dashboard?timeframe=24h`;
  await page.goto(dashboard);
  assert.equal(await views(page), '10');
  assert.deepEqual(await cells(page, 'country'), ['🇩🇪 Germany', '🇫🇷 France'], 'countries by name and flag');
  assert.match(await page.textContent('#bd-country tbody tr'), /60\.0%/, 'share of page views');

  // Click "DE": the URL, the figures, the other tables and a removable chip follow.
  await Promise.all([page.waitForURL(/country=DE/), page.click('#bd-country a:text-is("🇩🇪 Germany")')]);
  assert.equal(await views(page), '6');
  assert.deepEqual(await cells(page, 'browser'), ['Firefox']);
  assert.deepEqual(await cells(page, 'referrer'), ['news.example']);
  assert.match(await page.textContent('#filter-chips'), /Country:\s*DE/);
  assert.match(await page.textContent('#filter-scope'), /errors and web vitals are not filtered/);
  // The section links carry the page-view filters to the page-views report, which applies them.
  const pageviews = await page.getAttribute('nav.subnav a:text-is("Page views")', 'href');
  assert.match(pageviews, /country=DE/);
  // ... which applies them, and suggests existing values in its own filter fields.
  await page.goto(new URL(pageviews, SI_URL).href);
  assert.equal(await page.textContent('#total-views'), '6');
  assert.deepEqual(await page.$$eval('#dl-country option', (o) => o.map((x) => x.value).sort()), ['DE', 'FR']);
  await page.goBack();
  // The project switcher (one project navigation on every project page) leads to the same
  // section of the other project; settings have the same navigation.
  await page.click('nav.subnav details.switcher summary');
  assert.equal(await page.getAttribute('nav.subnav .switcher a:text-is("Second Shop")', 'href'), `/projects/${process.env.SI_SIBLING}/dashboard`);
  // A second filter keeps the first.
  await Promise.all([page.waitForURL(/browser=Firefox/), page.click('#bd-browser a:text-is("Firefox")')]);
  assert.match(page.url(), /country=DE/);
  assert.equal(await page.$$eval('#filter-chips .chip', (c) => c.length), 2);
  // Back: one filter again; back again: none.
  await page.goBack();
  await page.waitForURL((u) => !/browser=/.test(u.search));
  assert.equal(await views(page), '6');
  await page.goBack();
  await page.waitForURL((u) => !/country=/.test(u.search));
  assert.equal(await views(page), '10');
  assert.equal(await page.$$eval('#filter-chips .chip', (c) => c.length), 0);

  // Removing a chip (keyboard: focus and Enter) drops that filter only.
  await page.goto(`${dashboard}&country=DE&eventName=signup`);
  assert.equal(await page.textContent('[data-field="events.totalEvents"]'), '2');
  await page.focus('#filter-chips a[aria-label^="Remove filter Country"]');
  await Promise.all([page.waitForURL((u) => !/country=/.test(u.search)), page.keyboard.press('Enter')]);
  assert.equal(await views(page), '10');
  assert.match(page.url(), /eventName=signup/);

  // The filter form: suggestions from the tables, lowercase values, a path prefix; empty fields
  // stay out of the URL.
  await page.goto(dashboard);
  const suggestions = await page.$$eval('#dl-browser option', (o) => o.map((x) => x.value));
  assert.deepEqual(suggestions.sort(), ['Chrome', 'Firefox']);
  await page.click('.filter-form summary');
  await page.fill('#filter-form input[name=browser]', 'firefox');
  await page.fill('#filter-form input[name=urlPrefix]', '/blog/');
  await Promise.all([page.waitForURL(/browser=firefox/), page.click('#filter-form button[type=submit]')]);
  assert.equal(new URL(page.url()).searchParams.has('os'), false, 'no empty parameters');
  assert.equal(await views(page), '6');

  // Expand a table past five rows; percentages and bars stay.
  await page.goto(dashboard);
  assert.equal(await page.$$eval('#bd-page tbody tr:not([hidden])', (r) => r.length), 5);
  const more = page.locator('#table-page button.expand');
  assert.equal(await more.textContent(), 'Show all 7');
  await more.click();
  assert.equal(await more.getAttribute('aria-expanded'), 'true');
  assert.equal(await page.$$eval('#bd-page tbody tr:not([hidden])', (r) => r.length), 7);
  assert.ok(await page.$('#bd-page tbody tr .bar.w40'), 'the pricing row has a 40 % bar');

  // CSV of a table, with the dashboard's filters.
  await page.goto(`${dashboard}&country=DE`);
  const csvHref = await page.getAttribute('#table-page a.csv', 'href');
  const csv = await page.request.get(new URL(csvHref, SI_URL).href);
  assert.equal(csv.status(), 200);
  assert.match(csv.headers()['content-type'], /^text\/csv/);
  assert.match(csv.headers()['content-disposition'], /attachment; filename=".*page\.csv"/);
  const lines = (await csv.text()).trim().split('\r\n');
  assert.equal(lines[0], 'Page,Count,Percent');
  assert.equal(lines.length, 7, 'six German pages and the header');

  // Markup in a filter value is shown as text, never run; a parameter the dashboard does not
  // take is a clear message.
  await page.goto(`${dashboard}&os=${encodeURIComponent('<img src=x id=injected>')}`);
  assert.match(await page.textContent('#filter-chips'), /<img src=x id=injected>/);
  assert.equal(await page.$('#injected'), null);
  const bad = await page.goto(`${dashboard}&colour=red`);
  assert.equal(bad.status(), 400);
  assert.match(await page.textContent('main'), /colour/);
  await page.goto(`${SI_URL}/projects/${SI_PROJECT}/settings`);
  assert.equal(await page.getAttribute('nav.subnav a[aria-current="page"]', 'href'), `/projects/${SI_PROJECT}/settings`);
  assert.ok(await page.$('nav.subnav a:text-is("Page views")'), 'settings carry the project navigation');
  assert.equal(await page.getAttribute('nav.subnav .switcher a', 'href'), `/projects/${process.env.SI_SIBLING}/settings`);
  await page.goto(`${dashboard}&country=DE`);
  if (process.env.SI_SCREENSHOT) await page.screenshot({ path: process.env.SI_SCREENSHOT, fullPage: true });
  await context.close();
});

test('a public link filters the same way and keeps its prefix', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(`${SI_URL}${SI_PUBLIC_BASE}/dashboard?timeframe=24h`);
  assert.equal(await views(page), '10');
  await Promise.all([page.waitForURL(/country=FR/), page.click('#bd-country a:text-is("🇫🇷 France")')]);
  assert.ok(page.url().startsWith(`${SI_URL}${SI_PUBLIC_BASE}/dashboard?`), page.url());
  assert.equal(await views(page), '4');
  const remove = await page.getAttribute('#filter-chips a.chip-remove', 'href');
  assert.ok(remove.startsWith(`${SI_PUBLIC_BASE}/dashboard?`), remove);
  // A phone-wide dashboard never scrolls sideways.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page overflows by ${overflow}px at 390 px`);
  await context.close();
});
