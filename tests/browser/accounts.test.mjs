// The account pages in a real browser (Debian's Chromium, headless, driven by playwright-core):
// register → land on the first project → create another project → copy its keys with the copy
// buttons → log out → log in again. Run by tests/e2e/browser_accounts.rs, which starts the server
// and passes its URL as SI_URL, then checks the store.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useBrowser } from './lib.mjs';

const SI_URL = process.env.SI_URL;
const EMAIL = 'browser-user@example.com';
const PASSWORD = 'a-long-browser-password';
assert.ok(SI_URL, 'SI_URL must be set (see tests/e2e/browser_accounts.rs)');

const browser = useBrowser();

test('register, create a project, copy keys, log out, log in', async () => {
  // A phone-sized viewport: the pages must work there too.
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: SI_URL });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);

  await page.goto(`${SI_URL}/auth/register`);
  await page.fill('input[name=email]', EMAIL);
  await page.fill('input[name=password]', PASSWORD);
  // Sign-up leads to the first project's setup page.
  await Promise.all([page.waitForURL(/\/projects\/[0-9a-f]{24}\/setup$/), page.click('main button[type=submit]')]);
  assert.match(await page.textContent('h1'), /My First Project/);

  // Create a second project from the list.
  await page.goto(`${SI_URL}/projects`);
  await Promise.all([page.waitForURL(/\/projects\/new$/), page.click('text=New project')]);
  await page.fill('input[name=name]', 'Browser Shop');
  await page.fill('input[name=icon]', '🛒');
  await page.selectOption('select[name=environment]', 'staging');
  await page.fill('input[name=dataRetentionDays]', '30');
  await Promise.all([page.waitForURL(/\/projects\/[0-9a-f]{24}\/setup$/), page.click('main button[type=submit]')]);
  assert.match(await page.textContent('h1'), /Browser Shop/);
  await Promise.all([page.waitForURL(/\/projects\/[0-9a-f]{24}\/settings$/), page.click('text=Project settings')]);
  assert.match(await page.textContent('h1'), /Browser Shop/);

  // Copy buttons put the keys on the clipboard.
  const pk = await page.inputValue('#pk');
  const sk = await page.inputValue('#sk');
  // The secret key is hidden until revealed.
  assert.equal(await page.getAttribute('#sk', 'type'), 'password');
  await page.click('button[data-reveal="#sk"]');
  assert.equal(await page.getAttribute('#sk', 'type'), 'text');
  assert.equal(await page.getAttribute('button[data-reveal="#sk"]', 'aria-pressed'), 'true');
  assert.match(pk, /^pk_[0-9a-f]{64}$/);
  assert.match(sk, /^sk_[0-9a-f]{64}$/);
  await page.click('button[data-copy="#pk"]');
  await page.waitForFunction(() => document.querySelector('button[data-copy="#pk"]').textContent === 'Copied');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), pk);
  await page.click('button[data-copy="#sk"]');
  await page.waitForFunction(() => document.querySelector('button[data-copy="#sk"]').textContent === 'Copied');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), sk);
  assert.match(await page.textContent('#snippet'), new RegExp(pk));

  // Log out: the projects page now sends us to the login form.
  await Promise.all([page.waitForURL(/\/auth\/login$/), page.click('nav button:has-text("Log out")')]);
  await page.goto(`${SI_URL}/projects`);
  await page.waitForURL(/\/auth\/login\?next=/);

  // A wrong password is refused; the right one lands on the projects list.
  await page.fill('input[name=email]', EMAIL);
  await page.fill('input[name=password]', 'not-the-password');
  await page.click('main button[type=submit]');
  await page.waitForSelector('.alert.error');
  assert.match(await page.textContent('.alert.error'), /Invalid email or password/);
  await page.fill('input[name=email]', EMAIL);
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForURL(/\/projects$/), page.click('main button[type=submit]')]);
  const list = await page.textContent('main');
  assert.match(list, /Browser Shop/);
  assert.match(list, /My First Project/);
  if (process.env.SI_SCREENSHOT) await page.screenshot({ path: process.env.SI_SCREENSHOT, fullPage: true });
  await context.close();
});
