// A forgotten password reset in a real browser, and the audit-log viewer's filters: Debian's
// Chromium (headless, playwright-core) against the real server, whose emails go to a local SMTP
// sink (aiosmtpd writing a Maildir at SI_MAILDIR). Run by tests/e2e/browser_email.rs, which
// starts both, registers SI_EMAIL (password `password-123`, the platform admin) and checks the
// store afterwards.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { logIn, useBrowser } from './lib.mjs';

const SI_URL = process.env.SI_URL;
const MAILDIR = process.env.SI_MAILDIR;
const EMAIL = process.env.SI_EMAIL;
const NEW_PASSWORD = 'a-new-browser-password';
assert.ok(SI_URL && MAILDIR && EMAIL, 'SI_URL, SI_MAILDIR and SI_EMAIL must be set (see tests/e2e/browser_email.rs)');

const browser = useBrowser();

/** The reset link of the first email in the Maildir (quoted-printable decoded), polled. */
async function resetLink() {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const dir = join(MAILDIR, 'new');
    const files = await readdir(dir).catch(() => []);
    if (files.length > 0) {
      const raw = await readFile(join(dir, files[0]), 'latin1');
      const text = raw
        .replace(/=\r?\n/g, '')
        .replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
      const match = text.match(/https?:\/\/\S+\/auth\/reset\?token=prt_[0-9a-f]{48}/);
      assert.ok(match, `a reset link in ${text}`);
      return match[0];
    }
    assert.ok(Date.now() < deadline, 'the reset email arrives');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('reset a forgotten password through the emailed link', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(`${SI_URL}/auth/login`);
  await Promise.all([page.waitForURL(/\/auth\/forgot$/), page.click('text=Forgot your password?')]);
  await page.fill('input[name=email]', EMAIL);
  await page.click('main button[type=submit]');
  await page.waitForSelector('#reset-sent');

  const link = await resetLink();
  await page.goto(link);
  await page.fill('input[name=password]', NEW_PASSWORD);
  await page.click('main button[type=submit]');
  await page.waitForSelector('#reset-done');
  // The link is spent.
  await page.goto(link);
  assert.match(await page.textContent('#reset-error'), /already used/);
  await logIn(page, SI_URL, EMAIL, NEW_PASSWORD);
  await context.close();
});

test('filter the audit log by action, kind and text, and page back', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  await logIn(page, SI_URL, EMAIL, NEW_PASSWORD);
  await page.goto(`${SI_URL}/admin/logs`);
  assert.ok((await page.locator('#log-table tbody tr').count()) >= 4);

  await page.selectOption('select[name=actionCode]', 'AUTH_PASSWORD_RESET');
  await Promise.all([page.waitForURL(/actionCode=AUTH_PASSWORD_RESET/), page.click('#log-filters button[type=submit]')]);
  const rows = page.locator('#log-table tbody tr');
  assert.equal(await rows.count(), 1);
  assert.match(await rows.first().textContent(), /AUTH_PASSWORD_RESET/);
  assert.match(await rows.first().textContent(), new RegExp(EMAIL.replace('.', '\\.')));
  assert.equal(await page.inputValue('select[name=actionCode]'), 'AUTH_PASSWORD_RESET', 'the form keeps the filter');

  await page.selectOption('select[name=actionCode]', '');
  await page.selectOption('select[name=kind]', 'action');
  await page.fill('input[name=contains]', '/auth/LOGIN');
  await Promise.all([page.waitForURL(/contains=/), page.click('#log-filters button[type=submit]')]);
  const logins = await page.locator('#log-table tbody tr').allTextContents();
  assert.ok(logins.length >= 1);
  for (const row of logins) assert.match(row, /AUTH_LOGIN_SUCCESS/);

  await page.selectOption('select[name=kind]', 'error');
  await Promise.all([page.waitForURL(/kind=error/), page.click('#log-filters button[type=submit]')]);
  await page.waitForSelector('#no-logs');

  await Promise.all([page.waitForURL(/\/admin\/logs$/), page.click('#log-filters a:has-text("Reset")')]);
  assert.ok((await page.locator('#log-table tbody tr').count()) >= 4);
  await context.close();
});
