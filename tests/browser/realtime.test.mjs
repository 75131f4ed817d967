// The guided first run and the realtime panel in a real browser: from the landing page's
// "Create an account" to the setup page, whose "Waiting for your first event…" turns into
// "Receiving data" when a page view is ingested (no reload); the dashboard's visitors-now count
// and live feed move when more arrive; an empty project's dashboard explains itself; the
// projects list shows visitors today with a sparkline. Run by tests/e2e/browser_realtime.rs
// (SI_URL).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useBrowser } from './lib.mjs';

const SI_URL = process.env.SI_URL;
assert.ok(SI_URL, 'SI_URL must be set (see tests/e2e/browser_realtime.rs)');
const browser = useBrowser();

async function pageview(key, url, clientId) {
  const r = await fetch(`${SI_URL}/v1/pageviews`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url, clientId }),
  });
  assert.equal(r.status, 201, await r.text());
}

test('first run: sign up, snippet, live status, live dashboard, projects list', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);

  await page.goto(SI_URL);
  await Promise.all([page.waitForURL(/\/auth\/register$/), page.click('text=Create an account')]);
  await page.fill('input[name=email]', 'realtime-user@example.com');
  await page.fill('input[name=password]', 'a-long-browser-password');
  await Promise.all([page.waitForURL(/\/projects\/[0-9a-f]{24}\/setup$/), page.click('main button[type=submit]')]);
  const base = new URL(page.url()).pathname.replace(/\/setup$/, '');
  assert.match(await page.textContent('h1'), /My First Project/);
  assert.equal((await page.textContent('#live-status')).trim(), 'Waiting for your first event…');
  const key = (await page.textContent('#snippet')).match(/pk_[0-9a-f]{64}/)[0];
  await page.waitForSelector('[data-live=open]');
  await page.evaluate(() => { window.__notReloaded = true; });

  await pageview(key, 'https://shop.example/first', 'browser-visitor-1');
  await page.waitForFunction(() => document.querySelector('#live-status').textContent.trim() === 'Receiving data');
  assert.equal(await page.evaluate(() => window.__notReloaded), true, 'no reload');

  // The dashboard: the count and the feed move without a reload.
  await Promise.all([page.waitForURL(/\/dashboard$/), page.click('text=Go to the dashboard')]);
  assert.equal(await page.$('#first-run'), null, 'a project with data shows its figures');
  await page.waitForFunction(() => document.querySelector('#live-visitors').textContent === '1');
  await page.waitForFunction(() => document.querySelector('#live-feed').textContent.includes('https://shop.example/first'));
  await page.waitForSelector('[data-live=open]');
  await page.evaluate(() => { window.__notReloaded = true; });
  await pageview(key, 'https://shop.example/second', 'browser-visitor-2');
  await page.waitForFunction(() => document.querySelector('#live-visitors').textContent === '2');
  await page.waitForFunction(() => document.querySelector('#live-feed li').textContent.includes('https://shop.example/second'));
  assert.equal(await page.evaluate(() => window.__notReloaded), true, 'no reload');

  // A new project: setup page, then an empty dashboard that explains itself.
  await page.goto(`${SI_URL}/projects/new`);
  await page.fill('input[name=name]', 'Empty Shop');
  await Promise.all([page.waitForURL(/\/projects\/[0-9a-f]{24}\/setup$/), page.click('main button[type=submit]')]);
  const emptyKey = (await page.textContent('#snippet')).match(/pk_[0-9a-f]{64}/)[0];
  await Promise.all([page.waitForURL(/\/dashboard$/), page.click('text=Go to the dashboard')]);
  assert.ok(await page.isVisible('#first-run'));
  assert.match(await page.textContent('#first-run'), /has not received anything yet/);
  assert.equal(await page.isVisible('.kpis'), false, 'no row of zeros');
  assert.equal(await page.isVisible('.charts'), false, 'no blank charts');
  await page.waitForSelector('[data-live=open]');
  await pageview(emptyKey, 'https://empty.example/', 'empty-visitor');
  await page.waitForFunction(() => document.querySelector('#first-run [data-live-status]').textContent.includes('Receiving data'));
  await Promise.all([page.waitForNavigation(), page.click('text=Show the figures')]);
  assert.equal(await page.$('#first-run'), null);

  // The projects list: visitors today and a sparkline per project.
  await page.goto(`${SI_URL}/projects`);
  const first = page.locator(`[data-project="${base.split('/')[2]}"]`);
  assert.match(await first.textContent(), /2\s+visitors today/);
  assert.equal(await first.locator('svg.spark polyline').count(), 1);
  await context.close();
});
