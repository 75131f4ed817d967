// Error groups in headless Chromium, against the real server over errors seeded by
// tests/e2e/error_groups.rs (SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT, SI_KEY: four message
// shapes, five occurrences each): one row per shape; clicking a row filters the page (chip,
// URL); resolving a group takes it off the list; a new occurrence ingested over /v1/errors
// brings it back as regressed; an axe-core scan and a 390 px phone width. On the dashboard:
// the errors KPI counts groups, a group's row filters the dashboard's errors by it (URL, chip,
// figures, kept by the auto-refresh), its detail link opens the errors page filtered by it, and
// the chip removes the filter.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { logIn, useBrowser } from './lib.mjs';

const { SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT, SI_KEY } = process.env;
assert.ok(SI_URL && SI_EMAIL && SI_PROJECT && SI_KEY, 'set by tests/e2e/error_groups.rs');
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const list = `${SI_URL}/projects/${SI_PROJECT}/errors?timeframe=24h`;
const dashboard = `${SI_URL}/projects/${SI_PROJECT}/dashboard?timeframe=24h`;
const browser = useBrowser();

const rows = (page) => page.$$eval('#error-groups tbody tr', (trs) => trs.map((tr) => ({
  signature: tr.dataset.signature,
  state: tr.dataset.state,
  message: tr.querySelector('a.group-filter').textContent.trim(),
})));

async function axeClean(page, what) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const found = result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  assert.deepEqual(found, [], `${what} has no axe violations`);
}

// Runs first: the figures are those seeded (20 errors, 5 per shape); nothing is ingested here.
test('the dashboard counts error groups; a row filters its errors by the group; the chip removes it', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const failures = [];
  page.on('pageerror', (e) => failures.push(String(e)));
  await logIn(page, SI_URL, SI_EMAIL, SI_PASSWORD);
  await page.goto(dashboard);
  const kpi = (field) => page.textContent(`#kpi-errors [data-field="${field}"]`);
  assert.equal(await kpi('errors.totalErrors'), '20');
  assert.equal(await kpi('errors.uniqueSignatures'), '4', 'groups, not 1.x fingerprints');
  assert.match(await page.textContent('#error-groups-count'), /4 error groups/);
  const groupRows = () => page.$$eval('#bd-error tbody tr', (trs) => trs.map((tr) => tr.querySelector('a').textContent.trim()));
  assert.equal((await groupRows()).length, 4);
  await axeClean(page, 'the dashboard with its error groups');

  // Click the group's row: the URL and the errors figures change; a chip says which group.
  const row = page.locator('#bd-error a:not(.row-detail)', { hasText: /^Item \d+ not found$/ });
  const signature = /signature=([0-9a-f]{16})/.exec(await row.getAttribute('href'))[1];
  await Promise.all([page.waitForURL(new RegExp(`[?&]signature=${signature}`)), row.click()]);
  assert.equal(await kpi('errors.totalErrors'), '5');
  assert.equal(await kpi('errors.uniqueSignatures'), '1');
  assert.deepEqual(await groupRows(), [await page.textContent('#bd-error tbody tr a')]);
  assert.match(await page.textContent('#filter-chips'), /Error group:\s*Item <n> not found/);
  assert.match(await page.textContent('#filter-scope'), /error group filter applies to errors only/);
  await axeClean(page, 'the dashboard filtered by an error group');
  // The auto-refresh asks for the same group.
  await page.evaluate(() => window.siDashboard.refresh());
  await page.waitForFunction(() => /Updated/.test(document.getElementById('refresh-status').textContent));
  assert.equal(await kpi('errors.totalErrors'), '5');
  assert.equal((await groupRows()).length, 1);

  // The row's detail link: the errors page filtered by the same group.
  await Promise.all([
    page.waitForURL(new RegExp(`/errors\\?timeframe=24h&signature=${signature}$`)),
    page.click('#bd-error a.row-detail'),
  ]);
  assert.equal(await page.textContent('#total-errors'), '5');
  assert.match(await page.textContent('#filter-chips'), /Error group:\s*Item <n> not found/);
  // Back on the dashboard (the section link carries the group), the chip removes the filter.
  await Promise.all([
    page.waitForURL(new RegExp(`/dashboard\\?timeframe=24h&signature=${signature}$`)),
    page.click('nav.subnav a:text-is("Dashboard")'),
  ]);
  await Promise.all([
    page.waitForURL((u) => !/signature=/.test(u.search)),
    page.click('#filter-chips .chip-remove'),
  ]);
  assert.equal(await kpi('errors.totalErrors'), '20');
  assert.equal(await kpi('errors.uniqueSignatures'), '4');
  assert.equal((await groupRows()).length, 4);
  assert.equal(await page.$('#filter-chips .chip'), null);
  assert.deepEqual(failures, []);
  await context.close();
});

test('resolve a group, see it leave; a new occurrence brings it back as regressed', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const failures = [];
  page.on('pageerror', (e) => failures.push(String(e)));
  await logIn(page, SI_URL, SI_EMAIL, SI_PASSWORD);
  await page.goto(list);
  let groups = await rows(page);
  assert.equal(groups.length, 4, 'one row per message shape');
  assert.equal(await page.textContent('#unique-signatures'), '4');
  assert.ok(groups.every((g) => g.state === 'open'));
  const item = groups.find((g) => /^Item \d+ not found$/.test(g.message));
  assert.ok(item, JSON.stringify(groups));
  // Dates read as local, relative times.
  assert.match(await page.textContent(`tr[data-signature="${item.signature}"] time`), /ago|now/);
  await axeClean(page, 'the errors page');

  // Clicking the row filters the page by its group: URL, chip, totals.
  await Promise.all([
    page.waitForURL(new RegExp(`signature=${item.signature}`)),
    page.click(`tr[data-signature="${item.signature}"] a.group-filter`),
  ]);
  assert.equal(await page.textContent('#total-errors'), '5');
  assert.match(await page.textContent('#filter-chips'), /Error group:\s*Item <n> not found/);
  await Promise.all([page.waitForURL((u) => !/signature=/.test(u.search)), page.click('#filter-chips .chip-remove')]);
  assert.equal(await page.textContent('#total-errors'), '20');

  // Resolve it: the page comes back without it.
  await Promise.all([
    page.waitForURL(list),
    page.click(`tr[data-signature="${item.signature}"] button[data-action="resolved"]`),
  ]);
  groups = await rows(page);
  assert.equal(groups.length, 3);
  assert.ok(!groups.some((g) => g.signature === item.signature), 'the resolved group left the list');
  await Promise.all([page.waitForURL(/state=resolved/), page.click('.state-tabs a[data-state="resolved"]')]);
  assert.deepEqual((await rows(page)).map((g) => [g.signature, g.state]), [[item.signature, 'resolved']]);

  // A new occurrence after the resolution: back in the open list as regressed.
  await new Promise((r) => setTimeout(r, 50));
  const sent = await fetch(`${SI_URL}/v1/errors`, {
    method: 'POST',
    headers: { authorization: `Bearer ${SI_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify([{ message: 'Item 4242 not found', errorType: 'Error',
      stackTrace: 'Error\n    at load (https://shop.example/assets/app.js:77:1)', browser: 'Chrome' }]),
  });
  assert.equal(sent.status, 201);
  let regressed;
  for (let i = 0; i < 40 && !regressed; i++) {
    await new Promise((r) => setTimeout(r, 250));
    await page.goto(list);
    regressed = (await rows(page)).find((g) => g.signature === item.signature && g.state === 'regressed');
  }
  assert.ok(regressed, 'the group came back as regressed');
  assert.match(await page.textContent(`tr[data-signature="${item.signature}"] .badge`), /Regressed/);
  await axeClean(page, 'the errors page with a regressed group');

  // A phone: nothing wider than 390 px.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(list);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  const wide = await page.evaluate(() => [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.parentElement.closest('.table-scroll'))
    .slice(0, 5).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`));
  assert.ok(overflow <= 0, `the errors page overflows by ${overflow}px at 390 px: ${wide.join(', ')}`);
  await axeClean(page, 'the errors page at 390 px');
  assert.deepEqual(failures, []);
  await context.close();
});
