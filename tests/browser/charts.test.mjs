// Time charts, formatting, dark mode and phone widths in a real browser (Debian's Chromium,
// headless, playwright-core), against the real server over data seeded by
// tests/e2e/browser_charts.rs (SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT, SI_PUBLIC_BASE,
// SI_FINGERPRINT, SI_TOTAL_7D, SI_SHOTS): bucket sizes per range and their sums, the partial
// bucket, the tooltip by mouse and keyboard, resizing, the table alternative, the custom date
// range (bad ranges included), the timeframe selector's keyboard use, numbers/dates/URLs/
// countries for people, the dark-mode toggle, no page wider than 390 px, an axe-core scan of
// every page without violations, and screenshots at 1280 and 390 px written to SI_SHOTS.
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { chartDrawn, logIn, useBrowser } from './lib.mjs';

const { SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT, SI_PUBLIC_BASE, SI_FINGERPRINT, SI_TOTAL_7D, SI_SHOTS } = process.env;
assert.ok(SI_URL && SI_EMAIL && SI_PROJECT && SI_PUBLIC_BASE && SI_FINGERPRINT && SI_TOTAL_7D && SI_SHOTS,
  'set by tests/e2e/browser_charts.rs');
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const base = `/projects/${SI_PROJECT}`;
const browser = useBrowser();

async function signedIn(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', ...options });
  const page = await context.newPage();
  // Generous, as in dashboard_ui: on FerretDB a cold drill-down page can take most of VIEW_WAIT (20 s).
  page.setDefaultTimeout(45_000);
  const failures = [];
  page.on('pageerror', (e) => failures.push(`script error: ${e.message}`));
  await logIn(page, SI_URL, SI_EMAIL, SI_PASSWORD);
  return { context, page, failures };
}

/** The expected bucket of a range of `ms` (analytics::series::Bucket::for_range). */
function bucketOf(ms) {
  const H = 3_600_000, D = 24 * H;
  if (ms <= H + 60_000) return 'minute';
  if (ms <= 48 * H + 60_000) return 'hour';
  if (ms <= 92 * D) return 'day';
  if (ms <= 200 * D) return 'week';
  return 'month';
}

test('each range is plotted in its bucket, every bucket counted, the cut ones partial', async () => {
  const { context, page } = await signedIn();
  const now = Date.now();
  const jan1 = Date.UTC(new Date(now).getUTCFullYear(), 0, 1);
  const cases = [['5m', 'minute', 6], ['1h', 'minute', 61], ['24h', 'hour', 25], ['7d', 'day', 8], ['3m', 'day', 91],
    ['1y', bucketOf(now - jan1), null]];
  for (const [tf, bucket, points] of cases) {
    // A year's first read builds its rollups, which takes FerretDB longer than the server lets a
    // request wait (VIEW_WAIT): it answers 503 with Retry-After while the build goes on, and a
    // client that retries as told gets the view. A generous budget for the whole.
    const deadline = Date.now() + 180_000;
    let r;
    for (;;) {
      r = await page.request.get(`${SI_URL}${base}/dashboard/data?timeframe=${tf}`, { headers: { accept: 'application/json' }, timeout: 180_000 });
      if (r.status() !== 503 || Date.now() > deadline) break;
      const retryAfter = Number(r.headers()['retry-after']);
      assert.ok(retryAfter > 0, `${tf}: a 503 says when to retry`);
      await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000));
    }
    assert.equal(r.status(), 200, tf);
    const { data } = await r.json();
    for (const key of ['views', 'events', 'errors', 'vitals']) {
      const s = data.charts[key];
      assert.equal(s.bucket, bucket, `${tf} ${key}`);
      if (points) assert.equal(s.points.length, points, `${tf} ${key} buckets`);
      assert.equal(s.points.at(-1).partial, true, `${tf}: the current bucket is partial`);
      assert.ok(s.points.slice(1, -1).every((p) => !p.partial), `${tf}: only the ends are partial`);
      for (let i = 1; i < s.points.length; i++) assert.equal(s.points[i].start, s.points[i - 1].end, `${tf}: contiguous`);
    }
    const sum = (k) => data.charts[k].points.reduce((n, p) => n + p.values[0], 0);
    assert.equal(sum('views'), data.pageViews.totalViews, `${tf}: the views chart adds up to the total`);
    assert.equal(sum('events'), data.events.totalEvents, `${tf}: events add up`);
    assert.equal(sum('errors'), data.errors.totalErrors, `${tf}: errors add up`);
    assert.ok(Array.isArray(data.pageViews.viewsByDay), '1.x fields stay');
  }
  // The page says the bucket; the y-axis starts at 0.
  await page.goto(`${SI_URL}${base}/dashboard?timeframe=24h`);
  const c = await chartDrawn(page, 'chart-views');
  assert.match(c.label, /Page views per hour, 25 hours from 0 to /);
  assert.equal(c.rows, 25);
  assert.equal(await page.$eval('#chart-views .tick', (t) => t.textContent), '0');
  await page.goto(`${SI_URL}${base}/dashboard?timeframe=1h`);
  assert.match((await chartDrawn(page, 'chart-views')).label, /per minute/);
  await context.close();
});

test('the partial bucket is marked, the tooltip follows mouse and keys, the chart resizes and has a table', async () => {
  const { context, page, failures } = await signedIn();
  await page.goto(`${SI_URL}${base}/dashboard?timeframe=24h`);
  const c = await chartDrawn(page, 'chart-views');
  assert.ok(c.partial >= 1, 'partial marks drawn');
  assert.match(c.legend, /partial/);
  assert.match(c.legend, /still in progress/);
  const rows = await page.$$eval('#chart-views .chart-table tbody tr', (trs) => trs.map((tr) => tr.textContent));
  assert.match(rows.at(-1), /\(partial\)/);
  assert.doesNotMatch(rows[5], /partial/);

  // Mouse: hovering the last bar shows its value.
  const svg = page.locator('#chart-views svg');
  await svg.scrollIntoViewIfNeeded();
  const box = await svg.boundingBox();
  await svg.hover({ position: { x: box.width - 16, y: box.height / 2 } });
  const tip = page.locator('#chart-views .chart-tip');
  await tip.waitFor({ state: 'visible' });
  assert.match(await tip.textContent(), /\(partial\)Page views: \d+/);
  await page.mouse.move(0, 0);

  // Keyboard: Tab reaches the chart; arrows, Home and End move through the buckets.
  await page.focus('#chart-events svg');
  await page.locator('#chart-views svg').focus();
  const tipText = () => page.textContent('#chart-views .chart-tip');
  const last = await tipText();
  await page.keyboard.press('ArrowLeft');
  const before = await tipText();
  assert.notEqual(before, last);
  assert.doesNotMatch(before, /partial/);
  await page.keyboard.press('Home');
  assert.match(await tipText(), /\(partial\)/, 'the first hour is cut by the range too');
  await page.keyboard.press('End');
  assert.equal(await tipText(), last);
  assert.equal(await page.getAttribute('#chart-views svg', 'aria-describedby'), 'chart-views-tip');
  await page.keyboard.press('Escape');
  assert.equal(await tip.isVisible(), false);

  // Resize: the chart follows its box.
  const wide = (await chartDrawn(page, 'chart-views')).w;
  await page.setViewportSize({ width: 700, height: 900 });
  await page.waitForFunction((w) => document.querySelector('#chart-views svg').getBoundingClientRect().width < w - 50, wide);
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.waitForFunction((w) => Math.abs(document.querySelector('#chart-views svg').getBoundingClientRect().width - w) < 2, wide);

  // The drill-downs and the public dashboard draw the same way.
  for (const [path, id, re] of [[`${base}/pageviews?timeframe=24h`, 'chart-views', /per hour/],
    [`${base}/events?timeframe=7d`, 'chart-events', /per day/],
    [`${base}/errors?timeframe=1h`, 'chart-errors', /per minute/],
    [`${base}/errors/${encodeURIComponent(SI_FINGERPRINT)}?timeframe=24h`, 'chart-error-days', /per hour/],
    [`${base}/performance?timeframe=24h`, 'chart-lcp', /LCP per hour/],
    [`${SI_PUBLIC_BASE}/dashboard?timeframe=3m`, 'chart-views', /per day, 91 days/]]) {
    await page.goto(`${SI_URL}${path}`);
    const d = await chartDrawn(page, id);
    assert.match(d.label, re, path);
    assert.ok(d.marks > 0, `${path} draws marks`);
  }
  assert.deepEqual(failures, []);
  await context.close();
});

test('a custom date range comes from the date pickers, and bad ranges say why', async () => {
  const { context, page } = await signedIn();
  await page.goto(`${SI_URL}${base}/dashboard?timeframe=7d&country=de`);
  const day = (n) => new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 10);
  // Reversed: a message on the page, nothing sent.
  await page.fill('#range-from', day(2));
  await page.fill('#range-to', day(10));
  await page.click('#range-form button[type=submit]');
  assert.equal(await page.textContent('#range-error'), 'The start date is after the end date.');
  assert.equal(await page.getAttribute('#range-from', 'aria-invalid'), 'true');
  assert.match(page.url(), /timeframe=7d&country=de$/);
  // A good range: 10 whole days, the filter kept.
  await page.fill('#range-from', day(10));
  await page.fill('#range-to', day(1));
  await Promise.all([page.waitForURL(/from=/), page.click('#range-form button[type=submit]')]);
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('from'), day(10));
  assert.equal(url.searchParams.get('country'), 'de');
  const c = await chartDrawn(page, 'chart-views');
  assert.match(c.label, /per day, 10 days/);
  assert.match(await page.textContent('select[name=timeframe] option:checked'), new RegExp(`Custom: ${day(10)} to ${day(1)}`));
  // Rows keep the range in their links.
  assert.match(await page.getAttribute('#bd-browser a', 'href'), new RegExp(`from=${day(10)}`));
  // Hand-edited URLs: a 400 page with the message, and JSON with a code.
  for (const [q, message] of [[`from=${day(1)}&to=${day(10)}`, /start date is after the end date/],
    ['from=1999-12-31&to=2000-01-02', /before 2000/], ['from=2020-01-01&to=2026-01-01', /longer than/],
    [`from=${day(3)}`, /needs an end date/], ['from=2026-02-30&to=2026-03-02', /not a date/], [`from=${day(-3)}&to=${day(-4)}`, /after the end|future/]]) {
    const html = await page.goto(`${SI_URL}${base}/dashboard?${q}`);
    assert.equal(html.status(), 400, q);
    assert.match(await page.textContent('main'), message, q);
    const r = await page.request.get(`${SI_URL}${base}/dashboard/data?${q}`, { headers: { accept: 'application/json' } });
    assert.equal(r.status(), 400, q);
    const body = await r.json();
    assert.equal(body.code, 'INVALID_DATE_RANGE', q);
    assert.match(body.error, message, q);
  }
  await context.close();
});

test('the timeframe selector moves with arrow keys without reloading and applies on Enter', async () => {
  const { context, page } = await signedIn();
  await page.goto(`${SI_URL}${base}/dashboard?timeframe=7d`);
  let navigations = 0;
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations++; });
  await page.focus('select[name=timeframe]');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  await page.waitForTimeout(400);
  assert.equal(navigations, 0, 'arrow keys do not reload');
  assert.equal(await page.$eval('select[name=timeframe]', (s) => s.value), '3m');
  await Promise.all([page.waitForURL(/timeframe=3m/), page.keyboard.press('Enter')]);
  // The chart's table opens from the keyboard too.
  await page.focus('#chart-views .chart-table summary');
  await page.keyboard.press('Enter');
  assert.equal(await page.$eval('#chart-views .chart-table', (d) => d.open), true);
  await context.close();
});

test('numbers, dates, URLs, countries and devices read as people expect', async () => {
  for (const [locale, total] of [['en-US', Number(SI_TOTAL_7D).toLocaleString('en-US')], ['de-DE', Number(SI_TOTAL_7D).toLocaleString('de-DE')]]) {
    const { context, page } = await signedIn({ locale });
    await page.goto(`${SI_URL}${base}/dashboard?timeframe=7d`);
    assert.equal(await page.textContent('[data-field="pageViews.totalViews"]'), total, locale);
    assert.ok(/[.,]/.test(total), 'the seeded total has a group separator');
    await context.close();
  }
  const { context, page } = await signedIn();
  await page.goto(`${SI_URL}${base}/dashboard?timeframe=7d`);
  const country = await page.textContent('#bd-country a');
  assert.equal(country, '🇩🇪 Germany');
  assert.match(await page.getAttribute('#bd-country a', 'href'), /country=DE/);
  const pageLink = page.locator('#bd-page a').first();
  assert.match(await pageLink.textContent(), /^\/[a-z]/);
  assert.match(await page.textContent('#bd-deviceType a'), /^Desktop$/);
  await page.goto(`${SI_URL}${base}/pageviews?timeframe=7d`);
  const url = await page.textContent('#pages-table a, table a[data-url]');
  assert.match(url, /^\//, 'URLs without the origin');
  assert.match(await page.getAttribute('table a[data-url]', 'title'), /^https:\/\/shop\.example\//);
  for (const path of [`${base}/errors?timeframe=7d`, `${base}/errors/${encodeURIComponent(SI_FINGERPRINT)}?timeframe=7d`, `${base}/events?timeframe=7d`]) {
    await page.goto(`${SI_URL}${path}`);
    const times = await page.$$eval('time', (ts) => ts.map((t) => t.textContent));
    assert.ok(times.length > 0, path);
    for (const t of times) {
      assert.doesNotMatch(t, /\d{4}-\d\d-\d\dT/, `${path}: no raw ISO string`);
      assert.match(t, /ago|minute|hour|day|now/, `${path}: relative: ${t}`);
    }
  }
  await context.close();
});

test('dark mode follows the system and the toggle, which is remembered', async () => {
  const bg = (page) => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const { context, page } = await signedIn({ colorScheme: 'dark' });
  await page.goto(`${SI_URL}${base}/dashboard?timeframe=7d`);
  assert.equal(await bg(page), 'rgb(18, 21, 28)', 'the system is dark');
  assert.equal(await page.getAttribute('#theme-toggle', 'aria-pressed'), 'true');
  await page.focus('#theme-toggle');
  await page.keyboard.press('Enter');
  assert.equal(await bg(page), 'rgb(247, 248, 250)');
  assert.equal(await page.getAttribute('#theme-toggle', 'aria-pressed'), 'false');
  await page.goto(`${SI_URL}${base}/errors?timeframe=7d`);
  assert.equal(await bg(page), 'rgb(247, 248, 250)', 'remembered across pages');
  await page.click('#theme-toggle');
  assert.equal(await bg(page), 'rgb(18, 21, 28)');
  await context.close();
  const light = await signedIn({ colorScheme: 'light' });
  await light.page.goto(`${SI_URL}${base}/dashboard?timeframe=7d`);
  assert.equal(await bg(light.page), 'rgb(247, 248, 250)', 'the system is light');
  await light.context.close();
});

test('every page fits a 390 px phone, passes axe-core, and is photographed', async () => {
  mkdirSync(SI_SHOTS, { recursive: true });
  const pages = [
    ['dashboard', `${base}/dashboard?timeframe=24h`, true],
    ['pageviews', `${base}/pageviews?timeframe=7d`, true],
    ['events', `${base}/events?timeframe=7d`, true],
    ['event-detail', `${base}/events/signup?timeframe=7d`, true],
    ['errors', `${base}/errors?timeframe=7d`, true],
    ['error-detail', `${base}/errors/${encodeURIComponent(SI_FINGERPRINT)}?timeframe=7d`, true],
    ['performance', `${base}/performance?timeframe=7d`, true],
    ['settings', `${base}/settings`, false],
    ['public-dashboard', `${SI_PUBLIC_BASE}/dashboard?timeframe=30d`, true],
  ];
  for (const scheme of ['light', 'dark']) {
    const { context, page, failures } = await signedIn({ colorScheme: scheme });
    for (const [name, path, shoot] of pages) {
      for (const width of [1280, 390]) {
        await page.setViewportSize({ width, height: 900 });
        const r = await page.goto(`${SI_URL}${path}`);
        assert.equal(r.status(), 200, path);
        await page.waitForLoadState('networkidle');
        const sw = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(sw <= width, `${name} at ${width} px (${scheme}) is ${sw} px wide`);
        if (width === 1280 || scheme === 'light') {
          await page.evaluate(AXE);
          const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
          const found = result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
          assert.deepEqual(found, [], `${name} at ${width} px (${scheme}) has no axe violations`);
        }
        if (shoot) await page.screenshot({ path: `${SI_SHOTS}/${name}-${width}-${scheme}.png`, fullPage: true });
      }
    }
    assert.deepEqual(failures, []);
    await context.close();
  }
});
