// Reports in a real browser (Chromium, headless, playwright-core): save the form's filters as a
// template, apply it after a reload, generate an HTML report, watch the detail page go from
// pending to completed (progress bar, stages, elapsed and remaining time), open the interactive
// view (inline SVG charts, section tabs, sortable tables), then delete the report. Every page is
// checked for CSP violations (lib.mjs). Run by tests/e2e/reports.rs, which plays the worker and
// passes SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { logIn, useBrowser } from './lib.mjs';

const { SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT } = process.env;
assert.ok(SI_URL && SI_EMAIL && SI_PROJECT, 'set by tests/e2e/reports.rs');

const browser = useBrowser();

test('a report is generated from the form with a template, its progress shown live, then viewed and deleted', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on('dialog', (d) => d.accept());
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  page.on('response', (r) => { if (r.status() >= 400) console.log(`HTTP ${r.status()} ${r.url()}`); });

  await logIn(page, SI_URL, SI_EMAIL, SI_PASSWORD);
  await page.goto(`${SI_URL}/projects/${SI_PROJECT}/dashboard`);
  await Promise.all([page.waitForURL(/\/reports$/), page.click('nav.subnav >> text=Reports')]);
  await Promise.all([page.waitForURL(/\/reports\/new$/), page.click('#new-report')]);

  // Save the current filters as a template.
  await page.fill('[data-filter=browser]', 'Safari');
  await page.selectOption('#report-timeframe', '24h');
  await page.fill('#template-name', 'Safari, last day');
  await page.click('#template-save');
  await page.waitForFunction(() => /saved/.test(document.getElementById('report-form-status').textContent));

  // After a reload the template is offered; applying it fills the form.
  await page.reload();
  assert.equal(await page.inputValue('[data-filter=browser]'), '');
  const option = await page.waitForSelector('#template-select option:has-text("Safari, last day")', { state: 'attached' });
  await page.selectOption('#template-select', await option.getAttribute('value'));
  await page.click('#template-apply');
  assert.equal(await page.inputValue('[data-filter=browser]'), 'Safari');
  assert.equal(await page.inputValue('#report-timeframe'), '24h');
  assert.equal(await page.isHidden('#csv-mode-label'), true);
  await page.selectOption('#report-format', 'csv');
  assert.equal(await page.isVisible('#csv-mode-label'), true, 'CSV rows are offered for CSV only');

  // Generate an HTML report of all data.
  await page.fill('#report-name', 'Browser report');
  await page.selectOption('#report-datatype', 'all');
  await page.selectOption('#report-format', 'html');
  await Promise.all([page.waitForURL(/\/reports\/[0-9a-f]{24}$/), page.click('#report-generate')]);

  // The detail page: pending first, then live progress to completed.
  assert.equal(await page.textContent('#report-status'), 'pending');
  assert.equal(await page.getAttribute('#report-progress', 'value'), '0');
  await page.evaluate(() => {
    window.__seen = [];
    const bar = document.getElementById('report-progress');
    new MutationObserver(() => window.__seen.push(Number(bar.value))).observe(bar, { attributes: true, childList: true, characterData: true, subtree: true });
  });
  await page.waitForFunction(() => document.getElementById('report-status').textContent === 'completed');
  assert.equal(await page.getAttribute('#report-progress', 'value'), '100');
  assert.equal(await page.textContent('#report-percent'), '100%');
  const stages = await page.$$eval('#report-stages li', (lis) => lis.map((li) => li.dataset.stage));
  assert.deepEqual(stages, ['queued', 'aggregating', 'rendering', 'storing']);
  assert.match(await page.textContent('#report-elapsed'), /^\d+$/);
  assert.equal(await page.textContent('#report-remaining'), '0');
  assert.equal(await page.isVisible('#report-download'), true);
  assert.equal(await page.isHidden('#report-retry'), true);

  // The download link serves the file as an attachment.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#report-download')]);
  assert.match(download.suggestedFilename(), /^Browser_report-[0-9a-f]{24}\.html$/);

  // The interactive view: charts inline, tabs show one section, tables sort.
  await Promise.all([page.waitForURL(/\/view$/), page.click('#report-view')]);
  assert.ok((await page.$$('svg.report-chart rect')).length > 0, 'bar charts are drawn');
  assert.match(await page.textContent('.report-period'), /24h/);
  assert.match(await page.textContent('#section-pageviews'), /\/checkout/);
  assert.doesNotMatch(await page.textContent('#section-pageviews'), /\/pricing/, 'the template filter applies');
  await page.click('.report-tabs a[data-section=errors]');
  assert.equal(await page.isVisible('#section-errors'), true);
  assert.equal(await page.isHidden('#section-pageviews'), true);
  await page.click('.report-tabs a[data-section=performance]');
  const th = '#section-performance th:has-text("p75")';
  await page.click(th);
  assert.equal(await page.getAttribute(th, 'aria-sort'), 'ascending');
  await page.click(th);
  assert.equal(await page.getAttribute(th, 'aria-sort'), 'descending');

  // Delete from the detail page: back to an empty list.
  await page.goBack();
  await page.waitForSelector('#report-delete');
  await Promise.all([page.waitForURL(/\/reports$/), page.click('#report-delete')]);
  assert.match(await page.textContent('main'), /No reports yet/);
  await context.close();
});
