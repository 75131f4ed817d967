// Shared set-up of the headless-Chromium tests (Debian's Chromium driven by playwright-core,
// run with `node --test` by the e2e suite): the launch with the flags every test uses, a
// browser opened before a file's tests and closed after them, the login form, and the pixels a
// chart canvas painted.
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

/** The Chromium binary (`SI_CHROMIUM`, default Debian's). */
export const CHROMIUM = process.env.SI_CHROMIUM || '/usr/bin/chromium';

/** Launches headless Chromium, quiet and sandbox-free (tests run as root in containers). */
export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/**
 * Launches Chromium before the calling file's tests and closes it after them. Returns a handle
 * whose `newContext(options)` opens a context in that browser.
 */
export function useBrowser() {
  let browser;
  before(async () => {
    browser = await launchChromium();
  });
  after(async () => browser?.close());
  return { newContext: (options) => browser.newContext(options) };
}

/** Signs in through the login form and waits for the projects list. */
export async function logIn(page, url, email, password) {
  await page.goto(`${url}/auth/login`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(/\/projects$/), page.click('main button[type=submit]')]);
}
