// The AI Analysis page in a real browser (Chromium, headless, playwright-core): log in, run an
// analysis against the stub provider, watch it go queued → running → completed, see the rendered
// Markdown, and check that the script and the onerror handler the "model" injected never ran.
// Run by tests/e2e/ai.rs, which starts the stub and passes SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { logIn, useBrowser } from './lib.mjs';

const { SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT } = process.env;
assert.ok(SI_URL && SI_EMAIL && SI_PROJECT, 'set by tests/e2e/ai.rs');

const browser = useBrowser();

test('an analysis runs with visible progress and injected HTML in the result never executes', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });

  await logIn(page, SI_URL, SI_EMAIL, SI_PASSWORD);
  await page.goto(`${SI_URL}/projects/${SI_PROJECT}/dashboard`);
  await Promise.all([page.waitForURL(/ai-analysis$/), page.click('nav.subnav >> text=AI Analysis')]);

  // The builtin presets are offered; pick one, add a segment filter row, run.
  await page.waitForSelector('#ai-preset option[value="builtin:errors"]', { state: 'attached' });
  await page.selectOption('#ai-preset', 'builtin:errors');
  await page.selectOption('#ai-timeframe', '24h');
  await page.click('#ai-add-filter');
  await page.selectOption('.ai-filter select', 'utmSource');
  await page.fill('.ai-filter input:not(.ai-meta-key)', 'newsletter');

  // Record every status the page shows while the run progresses.
  await page.evaluate(() => {
    window.__seen = [];
    const el = document.getElementById('ai-status');
    new MutationObserver(() => window.__seen.push(el.dataset.status || el.textContent)).observe(el, { childList: true, characterData: true, subtree: true, attributes: true });
  });
  await page.click('#ai-run');
  await page.waitForFunction(() => document.getElementById('ai-status').dataset.status === 'completed');
  const seen = await page.evaluate(() => window.__seen);
  assert.ok(seen.includes('running'), `progress was shown: ${JSON.stringify(seen)}`);
  assert.ok(seen.indexOf('running') < seen.lastIndexOf('completed'), JSON.stringify(seen));

  // Rendered Markdown, sanitised: headings and emphasis are there, the injected HTML is not.
  assert.equal(await page.textContent('#ai-result h2'), 'Summary');
  assert.equal(await page.textContent('#ai-result strong'), 'slow');
  assert.equal(await page.$('#ai-result script'), null);
  assert.equal(await page.$('#ai-result img'), null);
  // A marker that must come after what must not happen: the probe requests the same failing
  // image the injected `<img src=x onerror=…>` would have requested at render time, so once the
  // probe's own error event has fired, an injected handler would already have run.
  await page.evaluate(() => new Promise((resolve) => {
    const probe = new Image();
    probe.addEventListener('error', resolve, { once: true });
    probe.addEventListener('load', resolve, { once: true });
    probe.src = 'x';
  }));
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'injected script did not run');
  assert.deepEqual(dialogs, []);

  // History lists the run; reopening it after a reload shows the same result.
  await page.reload();
  await page.waitForSelector('#ai-history tr.ai-run');
  assert.match(await page.textContent('#ai-history tr.ai-run'), /completed/);
  await page.click('#ai-history tr.ai-run');
  await page.waitForSelector('#ai-result h2');
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  await context.close();
});
