// The date picker on every drill-down page, the previous period over the page-view chart, and
// every dashboard control used with the keyboard only, in headless Chromium against the real
// server. Run by tests/e2e/browser_pages.rs, which seeds twenty days of page views (seven
// pages, Chrome from Germany, news.example), events, errors and web vitals, and passes SI_URL,
// SI_EMAIL, SI_PASSWORD, SI_PROJECT and SI_PUBLIC_BASE (a public link's prefix).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chartDrawn, logIn, useBrowser } from './lib.mjs';

const { SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT, SI_PUBLIC_BASE } = process.env;
assert.ok(SI_URL && SI_EMAIL && SI_PROJECT && SI_PUBLIC_BASE, 'set by tests/e2e/browser_pages.rs');
const base = `/projects/${SI_PROJECT}`;
const browser = useBrowser();
/** `YYYY-MM-DD` of the UTC day `n` days ago. */
const day = (n) => new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 10);

async function signedIn() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
  const page = await context.newPage();
  // Generous: several browser suites and FerretDB share a 2-core machine in CI.
  page.setDefaultTimeout(45_000);
  const failures = [];
  page.on('pageerror', (e) => failures.push(`script error: ${e.message}`));
  await logIn(page, SI_URL, SI_EMAIL, SI_PASSWORD);
  return { context, page, failures };
}

/** Presses Tab until the focused element matches `selector` (it must be reachable by Tab). */
async function tabTo(page, selector, max = 250) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return;
  }
  throw new Error(`${selector} is not reachable with Tab`);
}

const params = (page) => new URL(page.url()).searchParams;

test('every drill-down takes a custom range from its date picker and keeps it between pages', async () => {
  const { context, page, failures } = await signedIn();
  for (const [slug, filter, chart] of [['pageviews', 'urlPrefix=%2Fblog%2F', 'chart-views'], ['events', 'eventName=signup', 'chart-events'],
    ['errors', 'errorType=window_error', 'chart-errors'], ['performance', 'deviceType=desktop', 'chart-lcp']]) {
    await page.goto(`${SI_URL}${base}/${slug}?timeframe=24h&${filter}`);
    // Reversed: said on the page, nothing sent.
    await page.fill('#range-from', day(3));
    await page.fill('#range-to', day(9));
    await page.click('#range-form button[type=submit]');
    assert.equal(await page.textContent('#range-error'), 'The start date is after the end date.', slug);
    assert.equal(await page.getAttribute('#range-from', 'aria-invalid'), 'true');
    assert.doesNotMatch(page.url(), /from=/);
    // A good range: applied, the filter kept, the chart in days, the selector says "Custom".
    await page.fill('#range-from', day(9));
    await page.fill('#range-to', day(3));
    await Promise.all([page.waitForURL(/from=/), page.click('#range-form button[type=submit]')]);
    assert.equal(params(page).get('from'), day(9), slug);
    assert.equal(params(page).get('to'), day(3), slug);
    assert.equal(`${filter.split('=')[0]}=${encodeURIComponent(params(page).get(filter.split('=')[0]))}`, filter, `${slug} keeps its filter`);
    assert.match((await chartDrawn(page, chart)).label, /per day, 7 days/, slug);
    assert.equal(await page.textContent('select[name=timeframe] option:checked'), `Custom: ${day(9)} to ${day(3)}`);
    // Every section link, and the filters form, keep the range.
    for (const href of await page.$$eval('nav.subnav a', (as) => as.filter((a) => /\/(dashboard|pageviews|events|errors|performance)(\?|$)/.test(a.pathname + a.search)).map((a) => a.href))) {
      assert.match(href, new RegExp(`from=${day(9)}&to=${day(3)}`), `${slug}: ${href}`);
    }
    await Promise.all([page.waitForLoadState('load'), page.click('form.filters-form button[type=submit]')]);
    assert.equal(params(page).get('from'), day(9), `${slug}: applying filters keeps the range`);
    // Picking a timeframe instead ends the range.
    await page.selectOption('form.filters-form select[name=timeframe]', '30d');
    await Promise.all([page.waitForURL(/timeframe=30d/), page.click('form.filters-form button[type=submit]')]);
    assert.equal(params(page).get('from'), null, `${slug}: a timeframe replaces the range`);
  }
  // From the dashboard's range to the drill-downs and the details, through the links.
  await page.goto(`${SI_URL}${base}/dashboard?timeframe=7d&from=${day(9)}&to=${day(3)}`);
  await Promise.all([page.waitForURL(/\/events\?/), page.click('nav.subnav a:text-is("Events")')]);
  assert.equal(params(page).get('from'), day(9));
  await Promise.all([page.waitForURL(/\/events\/signup/), page.click('table a:text-is("signup")')]);
  assert.equal(params(page).get('to'), day(3), 'the event detail keeps the range');
  assert.match((await chartDrawn(page, 'chart-events')).label, /7 days/);
  await page.goto(`${SI_URL}${base}/errors?from=${day(9)}&to=${day(3)}`);
  await Promise.all([page.waitForURL(/\/errors\/[^?]+\?/), page.click('table a[href*="/errors/"]')]);
  assert.equal(params(page).get('from'), day(9), 'the error detail keeps the range');
  await Promise.all([page.waitForURL(/\/errors\?/), page.click('a:text("All errors")')]);
  assert.equal(params(page).get('from'), day(9), 'and so does its way back');
  // Hand-edited: a message on the page (400), never a 500.
  for (const slug of ['pageviews', 'events', 'errors', 'performance']) {
    const r = await page.goto(`${SI_URL}${base}/${slug}?from=${day(2)}&to=${day(5)}`);
    assert.equal(r.status(), 400, slug);
    assert.match(await page.textContent('main'), /start date is after the end date/, slug);
    const bad = await page.goto(`${SI_URL}${base}/${slug}?from=<b>x</b>&to=${day(5)}`);
    assert.equal(bad.status(), 400);
    assert.equal(await page.$$eval('main b', (b) => b.length), 0, 'markup is shown as text');
  }
  // Public links take the same range and keep their prefix.
  await page.goto(`${SI_URL}${SI_PUBLIC_BASE}/pageviews?timeframe=7d`);
  await page.fill('#range-from', day(9));
  await page.fill('#range-to', day(3));
  await Promise.all([page.waitForURL(/from=/), page.click('#range-form button[type=submit]')]);
  assert.ok(new URL(page.url()).pathname.startsWith(SI_PUBLIC_BASE));
  const events = await page.getAttribute('nav.subnav a:text-is("Events")', 'href');
  assert.ok(events.startsWith(`${SI_PUBLIC_BASE}/events?`) && events.includes(`from=${day(9)}`), events);
  assert.deepEqual(failures, []);
  await context.close();
});

test('the previous period is drawn over the page-view chart, in its tooltip and its table', async () => {
  const { context, page, failures } = await signedIn();
  await page.goto(`${SI_URL}${base}/dashboard?timeframe=7d&country=DE`);
  assert.equal(await page.$$eval('#chart-views .overlay-dot', (d) => d.length), 0, 'off by default');
  await Promise.all([page.waitForURL(/compare=1/), page.check('#compare-toggle')]);
  assert.equal(params(page).get('country'), 'DE', 'the filter stays');
  await chartDrawn(page, 'chart-views');
  const drawn = await page.$eval('#chart-views', (el) => ({
    dots: el.querySelectorAll('.overlay-dot').length,
    strokes: el.querySelectorAll('.stroke.overlay').length,
    bars: el.querySelectorAll('rect.series').length,
    legend: el.querySelector('.chart-legend').textContent,
    head: [...el.querySelectorAll('.chart-table thead th')].map((th) => th.textContent),
    rows: el.querySelectorAll('.chart-table tbody tr').length,
  }));
  assert.equal(drawn.dots, drawn.bars, 'one earlier bucket beside each bucket');
  assert.ok(drawn.strokes > 0);
  assert.match(drawn.legend, /Previous period/);
  assert.deepEqual(drawn.head, ['Day', 'Page views', 'Previous period']);
  // Dashed, in a colour of its own: not the bars' look.
  const look = await page.$eval('#chart-views .stroke.overlay', (l) => [getComputedStyle(l).strokeDasharray, getComputedStyle(l).stroke]);
  const bar = await page.$eval('#chart-views rect.series', (r) => getComputedStyle(r).fill);
  assert.notEqual(look[0], 'none');
  assert.notEqual(look[1], bar);
  // The table and the tooltip name the earlier day and its figure, which add up to the KPI's.
  const data = await (await page.request.get(`${SI_URL}${base}/dashboard/data?timeframe=7d&country=DE&compare=1`, { headers: { accept: 'application/json' } })).json();
  const earlier = data.data.charts.viewsPrevious.points;
  assert.equal(earlier.reduce((n, p) => n + p.values[0], 0), data.data.previous.totalViews);
  const cells = await page.$$eval('#chart-views .chart-table tbody tr', (trs) => trs.map((tr) => tr.cells[2].textContent));
  cells.forEach((c, i) => assert.match(c, new RegExp(`^${earlier[i].values[0]} \\(`), `row ${i}: ${c}`));
  await page.locator('#chart-views svg').focus();
  await page.keyboard.press('Home');
  assert.match(await page.textContent('#chart-views .chart-tip'), /Previous period \([^)]+\): \d+/);
  // Remembered: reload, links and the other forms keep it; unticking removes it.
  await page.reload();
  assert.equal(await page.isChecked('#compare-toggle'), true);
  assert.match(await page.getAttribute('#bd-page a', 'href'), /compare=1/);
  assert.match(await page.getAttribute('.chip-remove', 'href'), /compare=1/);
  await page.selectOption('select[name=timeframe]', '24h');
  await page.waitForURL(/timeframe=24h/);
  assert.equal(params(page).get('compare'), '1');
  assert.ok(await page.$$eval('#chart-views .overlay-dot', (d) => d.length) >= 24, 'hours too');
  await Promise.all([page.waitForURL((u) => !u.searchParams.has('compare')), page.uncheck('#compare-toggle')]);
  assert.equal(await page.$$eval('#chart-views .overlay-dot', (d) => d.length), 0);
  // Public links offer it too.
  await page.goto(`${SI_URL}${SI_PUBLIC_BASE}/dashboard?timeframe=7d&compare=1`);
  assert.ok(await page.$$eval('#chart-views .overlay-dot', (d) => d.length) > 0);
  assert.deepEqual(failures, []);
  await context.close();
});

test('every dashboard control works from the keyboard alone', async () => {
  const { context, page, failures } = await signedIn();
  await page.goto(`${SI_URL}${base}/dashboard?timeframe=7d`);
  await page.evaluate(() => document.activeElement?.blur());

  // Timeframe: arrows choose, Enter shows.
  await tabTo(page, 'select[name=timeframe]');
  await page.keyboard.press('ArrowDown');
  await Promise.all([page.waitForURL(/timeframe=30d/), page.keyboard.press('Enter')]);

  // The date picker: typed, then applied with the button.
  await tabTo(page, '#range-from');
  const typed = (iso) => iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(0, 4);
  await page.keyboard.type(typed(day(9)));
  await tabTo(page, '#range-to');
  await page.keyboard.type(typed(day(3)));
  await tabTo(page, '#range-form button[type=submit]');
  await Promise.all([page.waitForURL(/from=/), page.keyboard.press('Enter')]);
  assert.equal(params(page).get('from'), day(9));
  assert.equal(params(page).get('to'), day(3));

  // The overlay switch: Space.
  await tabTo(page, '#compare-toggle');
  await Promise.all([page.waitForURL(/compare=1/), page.keyboard.press('Space')]);

  // The chart: focus, arrows read the buckets.
  await tabTo(page, '#chart-views svg');
  await page.keyboard.press('ArrowLeft');
  assert.equal(await page.isVisible('#chart-views .chart-tip'), true);
  await page.keyboard.press('Escape');

  // A row: Enter follows its link, which filters.
  await tabTo(page, '#bd-browser a');
  await Promise.all([page.waitForURL(/browser=Chrome/), page.keyboard.press('Enter')]);
  assert.match(await page.textContent('#filter-chips'), /Browser:\s*Chrome/);
  assert.equal(params(page).get('from'), day(9), 'the range stays');

  // The filter form: open with Enter, type, submit with Enter.
  await tabTo(page, 'details.filter-form summary');
  if (!(await page.$eval('details.filter-form', (d) => d.open))) await page.keyboard.press('Enter');
  await tabTo(page, '#filter-form input[name=referrer]');
  await page.keyboard.type('news.example');
  await Promise.all([page.waitForURL(/referrer=news\.example/), page.keyboard.press('Enter')]);

  // A chip's ×: Enter removes that filter only.
  await tabTo(page, '.chip-remove[aria-label^="Remove filter Browser"]');
  await Promise.all([page.waitForURL((u) => !u.searchParams.has('browser')), page.keyboard.press('Enter')]);
  assert.equal(params(page).get('referrer'), 'news.example');
  await tabTo(page, '#clear-filters');
  await Promise.all([page.waitForURL((u) => !u.searchParams.has('referrer')), page.keyboard.press('Enter')]);
  assert.equal(params(page).get('compare'), '1', 'clearing filters keeps the overlay');

  // Expand a breakdown with Enter, collapse with Space.
  await tabTo(page, '#table-page button.expand');
  await page.keyboard.press('Enter');
  assert.equal(await page.getAttribute('#table-page button.expand', 'aria-expanded'), 'true');
  assert.equal(await page.$$eval('#bd-page tbody tr:not([hidden])', (r) => r.length), 7);
  await page.keyboard.press('Space');
  assert.equal(await page.getAttribute('#table-page button.expand', 'aria-expanded'), 'false');

  // Auto-refresh: Space turns it off.
  await tabTo(page, '#auto-refresh');
  await page.keyboard.press('Space');
  assert.equal(await page.isChecked('#auto-refresh'), false);

  // Dark mode: Tab reaches the toggle (it comes first), Enter switches.
  await page.evaluate(() => document.activeElement?.blur());
  const pressed = await page.getAttribute('#theme-toggle', 'aria-pressed');
  await tabTo(page, '#theme-toggle');
  await page.keyboard.press('Enter');
  assert.notEqual(await page.getAttribute('#theme-toggle', 'aria-pressed'), pressed);

  // Everything focused shows where it is (a visible outline or ring).
  for (const selector of ['select[name=timeframe]', '#compare-toggle', '#bd-page a', '#table-page button.expand', '#theme-toggle']) {
    await page.focus(selector);
    const ring = await page.$eval(selector, (el) => {
      const s = getComputedStyle(el);
      return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none';
    });
    assert.ok(ring, `${selector} shows its focus`);
  }
  assert.deepEqual(failures, []);
  await context.close();
});
