// Shared set-up of the headless-Chromium tests (Debian's Chromium driven by playwright-core,
// run with `node --test` by the e2e suite): the launch with the flags every test uses, a
// browser opened before a file's tests and closed after them, the login form, and what an SVG
// chart drew. Every context opened through `launchChromium` (or `useBrowser`) watches
// for Content-Security-Policy violations, and any test during which a page reported one fails.
import { after, afterEach, before } from 'node:test';
import { chromium } from 'playwright-core';

/** The Chromium binary (`SI_CHROMIUM`, default Debian's). */
export const CHROMIUM = process.env.SI_CHROMIUM || '/usr/bin/chromium';

/** CSP violations reported by pages and not yet claimed by a test (see `afterEach` below). */
const cspViolations = [];

/**
 * Makes every page of `context` report CSP violations: the `securitypolicyviolation` event
 * (installed before any page script runs) and Chromium's console message for the same.
 */
async function watchCsp(context) {
  await context.exposeBinding('__siCspViolation', ({ page }, v) => {
    cspViolations.push(`${page.url()}: ${v.directive} blocked ${v.blocked || 'inline'} at ${v.source}:${v.line} ${v.sample}`);
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__siCspViolation({
        directive: e.effectiveDirective,
        blocked: e.blockedURI,
        source: e.sourceFile,
        line: e.lineNumber,
        sample: e.sample,
      });
    });
  });
  context.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) {
      cspViolations.push(`${message.page()?.url()}: ${message.text()}`);
    }
  });
}

/** Takes (and clears) the CSP violations recorded so far; for tests that expect some. */
export function takeCspViolations() {
  return cspViolations.splice(0);
}

// Every test of every file that imports this module: no page may have violated its CSP.
afterEach(() => {
  const seen = takeCspViolations();
  if (seen.length > 0) {
    throw new Error(`Content-Security-Policy violations:\n${seen.join('\n')}`);
  }
});

/**
 * Launches headless Chromium, quiet and sandbox-free (tests run as root in containers). Its
 * contexts watch for CSP violations.
 */
export async function launchChromium() {
  const browser = await chromium.launch({
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
  const newContext = browser.newContext.bind(browser);
  browser.newContext = async (options) => {
    const context = await newContext(options);
    await watchCsp(context);
    return context;
  };
  return browser;
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

/**
 * What an SVG chart (static/js/charts.js) in `#id` drew: its size, its marks (bars and dots
 * of the series), the partial ones, its bucket count (the table's rows) and its legend text.
 */
export async function chartDrawn(page, id) {
  await page.waitForSelector(`#${id} svg.chart-svg`);
  return page.$eval(`#${id}`, (el) => {
    const svg = el.querySelector('svg.chart-svg');
    const box = svg.getBoundingClientRect();
    return {
      w: box.width,
      h: box.height,
      marks: svg.querySelectorAll('rect.series, circle.dot').length,
      partial: svg.querySelectorAll('.partial').length,
      rows: el.querySelectorAll('.chart-table tbody tr').length,
      legend: el.querySelector('.chart-legend')?.textContent || '',
      label: svg.getAttribute('aria-label'),
    };
  });
}

/** Signs in through the login form and waits for the projects list. */
export async function logIn(page, url, email, password) {
  await page.goto(`${url}/auth/login`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(/\/projects$/), page.click('main button[type=submit]')]);
}
