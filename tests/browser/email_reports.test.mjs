// The email-report subscription form in a real browser: a member subscribes to the weekly
// report with the PDF attached, then switches it to a link, then unsubscribes. Run by
// tests/e2e/browser_email.rs, which starts the server (with SMTP and PUBLIC_URL, so email
// reports are available), registers SI_EMAIL (password `password-123`) with project SI_PROJECT,
// and checks the stored subscription afterwards.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { logIn, useBrowser } from './lib.mjs';

const SI_URL = process.env.SI_URL;
const EMAIL = process.env.SI_EMAIL;
const PROJECT = process.env.SI_PROJECT;
assert.ok(SI_URL && EMAIL && PROJECT, 'SI_URL, SI_EMAIL and SI_PROJECT must be set (see tests/e2e/browser_email.rs)');

const browser = useBrowser();

test('subscribe with the PDF attached, switch to a link, unsubscribe', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  await logIn(page, SI_URL, EMAIL, 'password-123');
  await page.goto(`${SI_URL}/projects/${PROJECT}/email-reports`);
  assert.equal((await page.textContent('#weekly-state')).trim(), 'not subscribed');
  assert.ok(await page.isChecked('#weekly-link'), 'a link is the default');

  await page.check('#weekly-pdf');
  await Promise.all([page.waitForLoadState('load'), page.click('#weekly-toggle')]);
  await page.waitForSelector('#email-reports-message');
  assert.match(await page.textContent('#email-reports-message'), /with the PDF report attached/);
  assert.equal((await page.textContent('#weekly-state')).trim(), 'subscribed, PDF attached');
  assert.equal((await page.textContent('#monthly-state')).trim(), 'not subscribed');

  await Promise.all([page.waitForLoadState('load'), page.click('#weekly-delivery')]);
  await page.waitForFunction(() => document.querySelector('#weekly-state')?.textContent.includes('link'));
  assert.equal((await page.textContent('#weekly-state')).trim(), 'subscribed, link');
  assert.match(await page.textContent('#weekly-delivery'), /Attach the PDF instead/);

  // And back to the PDF, which the test checks in the store.
  await Promise.all([page.waitForLoadState('load'), page.click('#weekly-delivery')]);
  await page.waitForFunction(() => document.querySelector('#weekly-state')?.textContent.includes('PDF'));
  await context.close();
});
