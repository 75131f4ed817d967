// Every server-rendered page in a real browser under its Content-Security-Policy: each page is
// opened (signed in, anonymous and through a public link) and lib.mjs fails the test on any
// violation. Also proves that watch works (a page with an inline script is caught) and that the
// selects that used to carry inline handlers still submit their forms. Run by
// tests/e2e/security.rs, which seeds a project and passes SI_URL, SI_EMAIL, SI_PASSWORD,
// SI_PROJECT, SI_ERROR (a fingerprint), SI_PUBLIC (a public dashboard path), SI_ORG2 (a second
// organization of the user) and SI_CSP (the server's policy).
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { logIn, takeCspViolations, useBrowser } from './lib.mjs';

const { SI_URL, SI_EMAIL, SI_PASSWORD, SI_PROJECT, SI_ERROR, SI_PUBLIC, SI_CSP, SI_ORG2 } = process.env;
assert.ok(SI_URL && SI_EMAIL && SI_PROJECT && SI_PUBLIC && SI_CSP && SI_ORG2, 'set by tests/e2e/security.rs');

const browser = useBrowser();

/** Opens `path` and waits until the page and its deferred scripts have run. */
async function visit(page, path) {
  const response = await page.goto(`${SI_URL}${path}`, { waitUntil: 'load' });
  // Charts and tables fill in after load; give their scripts a moment to finish.
  await page.waitForLoadState('networkidle');
  return response;
}

test('the violation watch catches an inline script', async () => {
  const server = createServer((_, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html', 'Content-Security-Policy': SI_CSP });
    res.end('<!doctype html><title>x</title><script>document.title = "ran"</script>');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    assert.equal(await page.title(), 'x', 'the policy blocked the inline script');
    await page.waitForTimeout(100); // the report is delivered asynchronously
    const seen = takeCspViolations();
    assert.ok(seen.some((v) => /script-src/.test(v)), `reported: ${seen.join(' | ')}`);
    await context.close();
  } finally {
    server.close();
  }
});

test('anonymous pages satisfy their policy', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  for (const path of ['/', '/auth/login', '/auth/register', '/no/such/page', SI_PUBLIC]) {
    const response = await visit(page, path);
    assert.ok(response.headers()['content-security-policy'], `${path} has a policy`);
  }
  // Public analytics pages with their charts.
  const base = SI_PUBLIC.replace(/\/dashboard$/, '');
  for (const view of ['/pageviews', '/events', '/errors', '/performance']) {
    await visit(page, `${base}${view}`);
  }
  await context.close();
});

test('signed-in pages satisfy their policy and the selects still submit', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  await logIn(page, SI_URL, SI_EMAIL, SI_PASSWORD);
  const project = `/projects/${SI_PROJECT}`;
  const paths = [
    '/projects',
    '/projects/new',
    `${project}/settings`,
    `${project}/dashboard`,
    `${project}/pageviews`,
    `${project}/events`,
    `${project}/events/signup`,
    `${project}/errors`,
    `${project}/errors/${SI_ERROR}`,
    `${project}/performance`,
    `${project}/ai-analysis`,
    '/org/users',
    '/org/public-links',
    '/account',
    '/admin',
    '/admin/users',
    '/admin/orgs',
    '/admin/public-links',
  ];
  for (const path of paths) {
    const response = await visit(page, path);
    assert.equal(response.status(), 200, path);
    assert.ok(response.headers()['content-security-policy'], `${path} has a policy`);
  }

  // The dashboard's timeframe select (data-autosubmit, wired by app.js) reloads with it.
  await visit(page, `${project}/dashboard?timeframe=7d`);
  await Promise.all([
    page.waitForURL(/timeframe=30d/),
    page.selectOption('select[name=timeframe]', '30d'),
  ]);

  // So does the organization switch: the other organization becomes the current one.
  await visit(page, '/projects');
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/org/switch') && r.status() === 303),
    page.selectOption('#org-switch', SI_ORG2),
  ]);
  await page.waitForFunction((id) => document.querySelector('#org-switch')?.value === id, SI_ORG2);
  await context.close();
});
