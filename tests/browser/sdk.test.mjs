// The browser SDK in a real browser: Debian's Chromium (headless), driven by playwright-core,
// against the real server on a real port. Test pages are served here, from another origin than
// the server (so CORS is exercised too), and load the SDK from the server like any site would.
//
// Run by tests/e2e/browser.rs, which starts the server, creates the projects, passes
//   SI_URL            the server's base URL
//   SI_KEY_HTTP       project for the fetch transport (timer flushes, flush(), autocapture)
//   SI_KEY_BEACON     project for the page-hide beacon
//   SI_KEY_WS         project for the ws transport
//   SI_KEY_MISC       project for retries, Do Not Track, a refused secret key and sessions
// and afterwards checks what these pages sent in the store. This file checks the wire: requests,
// headers, payloads, responses and WebSocket frames.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { launchChromium } from './lib.mjs';

const SI_URL = process.env.SI_URL;
const KEYS = {
  http: process.env.SI_KEY_HTTP,
  beacon: process.env.SI_KEY_BEACON,
  ws: process.env.SI_KEY_WS,
  misc: process.env.SI_KEY_MISC,
};
// A regular desktop Chrome user agent (headless Chromium announces itself, and the server
// flags that as a bot); the server derives browser "Chrome" and OS "Linux" from it.
const USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36';
const TIMEOUT = 15_000;

assert.ok(SI_URL && Object.values(KEYS).every(Boolean), 'SI_URL and SI_KEY_* must be set (see tests/e2e/browser.rs)');

/** The test page: the SDK from the server, `init` with `options`, helpers the test calls. */
const page = (key, options) => `<!doctype html>
<html><head><meta charset="utf-8"><title>SDK test page</title>
<script>
  // Beacons outlive the page, so the browser's request events miss them: note each call (it
  // still goes out) in localStorage, which the test reads back after leaving the page.
  const sendBeacon = navigator.sendBeacon;
  navigator.sendBeacon = function (url, data) {
    const queued = sendBeacon.call(navigator, url, data);
    localStorage.beacons = JSON.stringify([...JSON.parse(localStorage.beacons || '[]'), { url, type: data.type, size: data.size, queued }]);
    return queued;
  };
</script>
<script src="${SI_URL}/sdk/superinsights.js"></script>
<script>
  SuperInsights.init(${JSON.stringify(key)}, ${JSON.stringify(options)});
  window.maxEventDuration = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) maxEventDuration = Math.max(maxEventDuration, e.duration);
  }).observe({ type: 'event', buffered: true, durationThreshold: 16 });
  function crash() { setTimeout(function thrower() { throw new Error('boom: thrown by the test page'); }); }
  function reject() { Promise.reject(new Error('nope: rejected by the test page')); }
  function slowHandler() { const end = performance.now() + 120; while (performance.now() < end) {} }
</script></head>
<body>
  <h1>SuperInsights SDK test page</h1>
  <p>A paragraph of text, so that there is something to paint for largest-contentful-paint.</p>
  <button id="buy" class="cta primary" data-plan="pro" data-empty="" onclick="slowHandler()">Buy   now</button>
  <button class="secret" data-si-ignore>Ignored</button>
  <input type="password" id="pw">
</body></html>`;

let server;
let pagesUrl;
let browser;

before(async () => {
  const pages = {
    '/blank.html': '<!doctype html><title>blank</title>',
    '/app.html': page(KEYS.http, { autocapture: { enabled: true }, flushInterval: 1000, debug: true }),
    '/beacon.html': page(KEYS.beacon, { flushInterval: 60000, batchSize: 100 }),
    '/ws.html': page(KEYS.ws, { transport: 'ws', autocapture: { enabled: true }, flushInterval: 1000 }),
    '/misc.html': page(KEYS.misc, { flushInterval: 1000 }),
    '/ws-misc.html': page(KEYS.misc, { transport: 'ws', flushInterval: 1000 }),
    '/secret.html': page(KEYS.misc.replace(/^pk_/, 'sk_'), { flushInterval: 1000 }),
  };
  server = createServer((req, res) => {
    const body = pages[new URL(req.url, 'http://x').pathname];
    res.writeHead(body ? 200 : 404, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(body || 'not found');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  // "localhost" is another origin than the server's 127.0.0.1, and still a secure context.
  pagesUrl = `http://localhost:${server.address().port}`;
  browser = await launchChromium();
});

after(async () => {
  for (const context of beaconContexts) await context.close();
  await browser?.close();
  server?.close();
});

/** Records every request the page makes to the server's /v1 API, with its response status. */
function recordApiCalls(context) {
  const calls = [];
  context.on('request', (request) => {
    if (!request.url().startsWith(SI_URL + '/v1/') || request.method() !== 'POST') return;
    const call = { url: request.url(), headers: request.headers(), body: JSON.parse(request.postData() || 'null'), status: null };
    calls.push(call);
    request.response().then((r) => r && (call.status = r.status()), () => {});
  });
  return calls;
}

const itemsOf = (calls, channel) =>
  calls.filter((c) => new URL(c.url).pathname === `/v1/${channel}`).flatMap((c) => c.body.items);

async function until(what, check, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** What every scenario does on its page: navigate, track, time, fail, click. */
async function exercise(tab) {
  await tab.evaluate(() => history.pushState({}, '', '/app/step2'));
  await tab.evaluate(() => {
    SuperInsights.trackEvent('signup', { plan: 'pro', seats: 3 });
    SuperInsights.trackTiming('search', 123.5, { query: 'shoes' });
    SuperInsights.time('compute', () => {
      const end = performance.now() + 5;
      while (performance.now() < end) {}
    });
  });
  await tab.evaluate(() => SuperInsights.timeAsync('load_data', () => new Promise((r) => setTimeout(r, 30))));
  await tab.evaluate(() => {
    crash();
    reject();
  });
  await tab.click('#buy');
  await tab.click('.secret');
  await tab.click('#pw');
  // INP needs the slow click's event-timing entry, which arrives after the next paint.
  await until('an event-timing entry of the slow click', () => tab.evaluate(() => maxEventDuration >= 100));
}

test('fetch transport: page views, SPA navigation, events, timings, errors, vitals with INP, autocapture', async () => {
  const context = await browser.newContext({ userAgent: USER_AGENT });
  const calls = recordApiCalls(context);
  const tab = await context.newPage();
  await tab.goto(`${pagesUrl}/app.html?utm_source=newsletter&utm_campaign=launch`);
  await exercise(tab);
  await tab.evaluate(() => SuperInsights.flush());
  await until('page views, events, errors and vitals answered', () =>
    ['pageviews', 'events', 'errors', 'performance'].every((ch) => itemsOf(calls, ch).length) &&
    itemsOf(calls, 'events').length >= 5 &&
    calls.every((c) => c.status !== null),
  );

  for (const call of calls) {
    assert.equal(call.headers.authorization, `Bearer ${KEYS.http}`);
    assert.match(call.headers['content-type'], /^application\/json/);
    assert.ok(!call.url.includes('apiKey='), 'fetch sends the key as a header, not in the URL');
    assert.equal(call.status, 201, `${call.url} answered ${call.status}`);
    assert.ok(Array.isArray(call.body.items) && call.body.items.length > 0);
  }
  const views = itemsOf(calls, 'pageviews');
  assert.deepEqual(
    views.map((v) => new URL(v.url).pathname),
    ['/app.html', '/app/step2'],
  );
  const clientIds = new Set(calls.flatMap((c) => c.body.items.map((i) => i.clientId)));
  const sessionIds = new Set(calls.flatMap((c) => c.body.items.map((i) => i.sessionId)));
  assert.equal(clientIds.size, 1, 'one visitor id for the whole visit');
  assert.equal(sessionIds.size, 1, 'one session for the whole visit');
  assert.match([...clientIds][0], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  for (const item of calls.flatMap((c) => c.body.items)) {
    assert.equal(item.deviceType, 'desktop');
    assert.ok(!Number.isNaN(Date.parse(item.timestamp)), 'ISO timestamp');
  }
  const stored = await tab.evaluate(() => [localStorage.si_client_id, localStorage.si_session_id, localStorage.si_session_ts]);
  assert.equal(stored[0], [...clientIds][0]);
  assert.equal(stored[1], [...sessionIds][0]);
  assert.ok(Date.now() - Number(stored[2]) < 60_000);

  const events = itemsOf(calls, 'events');
  const click = events.filter((e) => e.eventName === '$click');
  assert.equal(click.length, 1, 'one $click: ignored and password elements are not captured');
  assert.deepEqual(click[0].properties.data, { plan: 'pro' });
  assert.equal(click[0].properties.text, 'Buy now');
  const vitals = itemsOf(calls, 'performance');
  assert.equal(vitals.length, 1, 'one web-vitals record per page load');
  assert.ok(vitals[0].inp >= 100, `INP ${vitals[0].inp} covers the 120 ms click handler`);
  await context.close();
});

/** Contexts whose beacons may still be in flight; closed after every other test. */
const beaconContexts = [];

test('beacon: what is queued is sent with sendBeacon and ?apiKey= when the page is left', async () => {
  const context = await browser.newContext({ userAgent: USER_AGENT });
  const calls = recordApiCalls(context);
  const tab = await context.newPage();
  await tab.goto(`${pagesUrl}/beacon.html`);
  await tab.evaluate(() => SuperInsights.trackEvent('before_hide', { reason: 'navigating away' }));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(calls.length, 0, 'nothing is sent before the page is hidden (60 s timer, batch of 100)');
  await tab.goto('about:blank'); // pagehide + visibilitychange: the SDK sends by beacon
  await tab.goto(`${pagesUrl}/blank.html`);
  const beacons = await tab.evaluate(() => JSON.parse(localStorage.beacons || '[]'));
  assert.deepEqual(
    beacons.map((b) => new URL(b.url).pathname).sort(),
    ['/v1/events', '/v1/pageviews', '/v1/performance'],
    'one beacon per non-empty queue (no errors were queued)',
  );
  for (const beacon of beacons) {
    assert.equal(new URL(beacon.url).origin, SI_URL);
    assert.equal(new URL(beacon.url).searchParams.get('apiKey'), KEYS.beacon, 'a beacon carries its key in the URL');
    assert.equal(beacon.type, 'application/json');
    assert.equal(beacon.queued, true, 'the browser accepted the beacon');
  }
  assert.equal(calls.length, 0, 'no fetch fallback');
  // Delivery itself is checked in the store by tests/e2e/browser.rs. The browser sends beacons
  // in the background and closing their context may abort one still in flight on a loaded
  // machine, so this context stays open until the other tests have run (closed in `after`).
  beaconContexts.push(context);
});

test('ws transport: ready, the same items as messages, one ack per message', async () => {
  const context = await browser.newContext({ userAgent: USER_AGENT });
  const tab = await context.newPage();
  const sent = [];
  const received = [];
  tab.on('websocket', (ws) => {
    assert.equal(ws.url(), `${SI_URL.replace(/^http/, 'ws')}/v1/ws?apiKey=${KEYS.ws}`);
    ws.on('framesent', (f) => sent.push(JSON.parse(f.payload)));
    ws.on('framereceived', (f) => received.push(JSON.parse(f.payload)));
  });
  const http = recordApiCalls(context);
  await tab.goto(`${pagesUrl}/ws.html`);
  await until('the ready message', () => received.some((m) => m.type === 'ready'));
  await exercise(tab);
  await tab.evaluate(() => SuperInsights.flush());
  const channels = ['pageviews', 'events', 'errors', 'performance'];
  await until('an ack for every message', () =>
    channels.every((ch) => sent.some((m) => m.channel === ch)) &&
    sent.filter((m) => m.channel === 'events').flatMap((m) => m.items).length >= 5 &&
    received.filter((m) => m.type === 'ack').length === sent.length,
  );
  assert.deepEqual(received.filter((m) => m.type === 'error'), [], 'no error replies');
  for (const message of sent) {
    const ack = received.find((m) => m.type === 'ack' && m.channel === message.channel && m.count === message.items.length);
    assert.ok(ack, `ack for ${message.channel} x${message.items.length}`);
  }
  assert.deepEqual(
    sent.filter((m) => m.channel === 'pageviews').flatMap((m) => m.items.map((i) => new URL(i.url).pathname)),
    ['/ws.html', '/app/step2'],
  );
  assert.equal(http.length, 0, 'nothing went over HTTP while the socket was open');
  await context.close();
});

test('retries 5xx and network errors after 1 and 2 s, drops 4xx', async () => {
  const context = await browser.newContext({ userAgent: USER_AGENT });
  const attempts = [];
  // A first answer of 503, then a network error, then the real server.
  await context.route(`${SI_URL}/v1/events`, async (route) => {
    attempts.push(Date.now());
    const cors = { 'access-control-allow-origin': pagesUrl, 'access-control-allow-credentials': 'true' };
    if (attempts.length === 1) await route.fulfill({ status: 503, headers: cors, body: '{}' });
    else if (attempts.length === 2) await route.abort('connectionreset');
    else await route.continue();
  });
  let pageviewAttempts = 0;
  await context.route(`${SI_URL}/v1/pageviews`, (route) => {
    pageviewAttempts += 1;
    const cors = { 'access-control-allow-origin': pagesUrl, 'access-control-allow-credentials': 'true' };
    return route.fulfill({ status: 429, headers: cors, body: '{"error":"Rate limit exceeded"}' });
  });
  const calls = recordApiCalls(context);
  const tab = await context.newPage();
  await tab.goto(`${pagesUrl}/misc.html`);
  await tab.evaluate(() => {
    SuperInsights.trackEvent('retried', { attempt: 'until it works' });
    SuperInsights.flush();
  });
  await until('the third attempt answered by the server', () => calls.some((c) => c.url.endsWith('/v1/events') && c.status === 201));
  assert.equal(attempts.length, 3);
  const gaps = [attempts[1] - attempts[0], attempts[2] - attempts[1]];
  assert.ok(gaps[0] >= 900 && gaps[0] < 1900, `first retry after ~1 s: ${gaps}`);
  assert.ok(gaps[1] >= 1900 && gaps[1] < 2900, `second retry after ~2 s: ${gaps}`);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(pageviewAttempts, 1, 'a 4xx is not retried');
  await context.close();
});

test('Do Not Track and a secret key send nothing', async () => {
  for (const [path, setup] of [
    ['/misc.html', () => Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' })],
    ['/secret.html', () => {}],
  ]) {
    const context = await browser.newContext({ userAgent: USER_AGENT });
    await context.addInitScript(setup);
    const calls = recordApiCalls(context);
    const tab = await context.newPage();
    await tab.goto(pagesUrl + path);
    await tab.evaluate(() => {
      SuperInsights.trackEvent('must_not_arrive');
      SuperInsights.flush();
    });
    await tab.goto('about:blank');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(calls.length, 0, `${path}: nothing sent`);
    await context.close();
  }
});

test('a session idle for more than 30 minutes is renewed; the visitor id is kept', async () => {
  for (const [idleMinutes, renewed] of [
    [31, true],
    [5, false],
  ]) {
    const context = await browser.newContext({ userAgent: USER_AGENT });
    await context.addInitScript((ts) => {
      if (localStorage.si_client_id) return;
      localStorage.si_client_id = 'visitor-from-an-earlier-visit';
      localStorage.si_session_id = 'session-from-an-earlier-visit';
      localStorage.si_session_ts = String(ts);
    }, Date.now() - idleMinutes * 60_000);
    const calls = recordApiCalls(context);
    const tab = await context.newPage();
    await tab.goto(`${pagesUrl}/misc.html`);
    await tab.evaluate(() => SuperInsights.trackEvent('session_check', { idle: true }));
    // Wait for the server's answers, not just the requests: closing the context cancels a request
    // still in flight, and the server then rightly drops what it never acknowledged.
    await until('the page view and the event answered', () =>
      itemsOf(calls, 'pageviews').length && itemsOf(calls, 'events').length && calls.every((c) => c.status !== null),
    );
    for (const call of calls) assert.equal(call.status, 201, `${call.url} answered ${call.status}`);
    for (const item of [...itemsOf(calls, 'pageviews'), ...itemsOf(calls, 'events')]) {
      assert.equal(item.clientId, 'visitor-from-an-earlier-visit');
      assert.equal(item.sessionId === 'session-from-an-earlier-visit', !renewed, `idle ${idleMinutes} min`);
    }
    await context.close();
  }
});

test('ws transport: items wait while the socket is down and go when it reconnects after 1 s', async () => {
  const context = await browser.newContext({ userAgent: USER_AGENT });
  const tab = await context.newPage();
  const connections = [];
  // Every connection passes through here to the real server, so the test can cut one.
  await tab.routeWebSocket(
    (url) => url.pathname === '/v1/ws',
    (ws) => {
      const connection = { at: Date.now(), sent: [], received: [], ws };
      connections.push(connection);
      const server = ws.connectToServer();
      ws.onMessage((m) => {
        connection.sent.push(JSON.parse(m));
        server.send(m);
      });
      server.onMessage((m) => {
        connection.received.push(JSON.parse(m));
        ws.send(m);
      });
    },
  );
  const acked = (connection, channel) => connection?.received.some((m) => m.type === 'ack' && m.channel === channel);
  await tab.goto(`${pagesUrl}/ws-misc.html`);
  await until('the landing page view acked', () => acked(connections[0], 'pageviews'));

  await connections[0].ws.close({ code: 1012, reason: 'the test cuts the connection' });
  const cutAt = Date.now();
  await tab.evaluate(() => {
    SuperInsights.trackEvent('queued_while_offline');
    SuperInsights.flush();
  });
  await until('a new connection and the queued event acked', () => acked(connections[1], 'events'));
  const reconnectedAfter = connections[1].at - cutAt;
  assert.ok(reconnectedAfter >= 800 && reconnectedAfter < 2500, `reconnected after ~1 s: ${reconnectedAfter} ms`);
  assert.equal(connections.length, 2);
  assert.ok(!connections[0].sent.some((m) => m.channel === 'events'), 'nothing sent into the closed socket');
  const sent = connections[1].sent.filter((m) => m.channel === 'events').flatMap((m) => m.items);
  assert.deepEqual(
    sent.map((i) => i.eventName),
    ['queued_while_offline'],
  );
  await context.close();
});
