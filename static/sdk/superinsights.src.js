/*
 * SuperInsights browser SDK: the readable source of static/sdk/superinsights.js.
 * Written for this server from the SuperInsights 1.x behaviour spec (no code of the original is
 * used): same global (`window.SuperInsights`), API, options, identifiers and wire format, so a
 * page instrumented for 1.x works by changing only the script URL.
 * Build: scripts/build-sdk (minifies this file and stamps its hash). Budget: 3 KB gzip.
 * Docs: docs/features/sdk.md. Targets browsers with ES2020 (optional chaining, `??`).
 */
(() => {
  const win = window;
  const doc = document;
  const nav = navigator;
  const SESSION_MS = 30 * 60 * 1000;
  const DEFAULT_SELECTORS = 'a,button,input[type=button],input[type=submit],[role=button],[data-si-track]';

  let config; // the merged options, set by a successful init()
  let apiUrl;
  let apiKey;
  let enabled;
  let user; // {userId, traits} from setUser()
  let timer;
  let socket;
  let wsAttempt = 0;
  let wsTimer;
  let lastUrl;
  let lastActivity = 0;
  let vitalsSent;
  let storage; // localStorage, or a plain object when storage is blocked (ids then last a page load)
  const queues = { pageviews: [], events: [], errors: [], performance: [] };
  const CHANNELS = Object.keys(queues);
  const seenErrors = {};
  const interactions = {}; // interactionId -> longest event duration, for INP
  const vitals = { cls: 0 };

  const on = (target, type, listener, options) => target.addEventListener(type, listener, options);
  const href = () => location.href;
  const now = () => performance.now();
  const log = (...args) => config?.debug && console.log('[SuperInsights]', ...args);

  // ---- identifiers -------------------------------------------------------------------------

  // A random v4 UUID; outside secure contexts (no crypto.randomUUID) a blob URL ends with one.
  const uuid = () => crypto.randomUUID?.() || URL.createObjectURL(new Blob()).slice(-36);

  /** The session id, renewed after 30 minutes without activity; every call counts as activity. */
  const sessionId = () => {
    const t = Date.now();
    if (!storage.si_session_id || t - storage.si_session_ts > SESSION_MS) storage.si_session_id = uuid();
    storage.si_session_ts = lastActivity = t;
    return storage.si_session_id;
  };

  // ---- environment (computed once) ---------------------------------------------------------

  // Browser and OS (names and versions) are derived by the server from the User-Agent header
  // of the same request, normalised to the names SuperInsights 1.x's SDK reports; only what the
  // server cannot see (the screen) is decided here.
  const ua = nav.userAgent;
  const width = screen.width;
  const deviceType =
    /iPad|Tablet|Silk/.test(ua) || (/Android/.test(ua) && width >= 768 && width <= 1024)
      ? 'tablet'
      : /Mobi|Android|iPhone|iPod|Opera Mini/.test(ua) || (width > 0 && width < 768)
        ? 'mobile'
        : 'desktop';
  const doNotTrack = /^(1|yes)$/.test(nav.doNotTrack || win.doNotTrack);

  // ---- queueing and sending ----------------------------------------------------------------

  /** Queues one item with the fields every item carries; a full queue is sent at once. */
  const enqueue = (channel, item) => {
    const queue = queues[channel];
    if (!enabled || doNotTrack) return;
    try {
      // A JSON snapshot: later changes to the caller's objects are not sent, and an item that
      // cannot be serialized (a cycle, a BigInt) is dropped here instead of breaking its batch.
      queue.push(
        JSON.parse(JSON.stringify({
          clientId: storage.si_client_id,
          sessionId: sessionId(),
          timestamp: new Date().toISOString(),
          deviceType,
          ...item,
        })),
      );
    } catch (e) {
      return log(e);
    }
    if (queue.length >= config.batchSize) send(channel);
  };

  /** POSTs with keepalive; retries after 1, 2 and 4 s on network errors and 5xx; drops on 4xx. */
  const post = (url, body, attempt) =>
    fetch(url, {
      method: 'POST',
      body,
      keepalive: true,
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + apiKey },
    })
      .then((r) => {
        if (r.status > 499) throw r.status;
      })
      .catch((e) => {
        log(url, e);
        if (attempt < 3) setTimeout(post, 1000 << attempt, url, body, attempt + 1);
      });

  /** Sends one queue in batches: over the socket in ws mode, else by fetch, or by beacon on page hide. */
  const send = (channel, hiding) => {
    const queue = queues[channel];
    const ws = config.transport == 'ws';
    const open = socket?.readyState == 1;
    // In ws mode items wait for the socket, except on page hide, when a beacon is the last chance.
    if (ws && !open && !hiding) return;
    while (queue.length) {
      const items = queue.splice(0, config.batchSize);
      const url = apiUrl + '/v1/' + channel;
      const body = JSON.stringify({ items, user });
      if (ws && open) socket.send(JSON.stringify({ channel, items }));
      else if (!(hiding && nav.sendBeacon?.(url + '?apiKey=' + apiKey, new Blob([body], { type: 'application/json' }))))
        post(url, body, 0);
    }
  };
  const sendAll = (hiding) => CHANNELS.forEach((channel) => send(channel, hiding));

  const connect = () => {
    if (!enabled || config.transport != 'ws' || socket) return;
    const ws = (socket = new WebSocket(apiUrl.replace(/^http/, 'ws') + config.wsPath + '?apiKey=' + apiKey));
    ws.onopen = () => {
      wsAttempt = 0;
      sendAll();
    };
    ws.onmessage = (e) => log(e.data);
    ws.onclose = () => {
      if (socket == ws) socket = 0;
      // Reconnect after 1, 2, 4, 8, then every 15 s.
      if (enabled) wsTimer = setTimeout(connect, Math.min(1 << wsAttempt++, 15) * 1000);
    };
  };

  // ---- automatic collection ----------------------------------------------------------------

  const utm = {}; // utm_* of the landing URL, reused for every page view of this page load
  for (const k of ['Source', 'Medium', 'Campaign', 'Term', 'Content'])
    utm['utm' + k] = new URLSearchParams(location.search).get('utm_' + k.toLowerCase()) || undefined;

  const pageview = () =>
    enqueue('pageviews', { url: (lastUrl = href()), title: doc.title, referrer: doc.referrer, ...utm, userId: user?.userId });
  // History navigations count when the URL changed (a state-only replaceState is not a view).
  const navigated = () => href() != lastUrl && pageview();

  /** Reports an error once per page load (keyed by message and the first stack lines). */
  const reportError = (message, stack, fields) => {
    // Coerced to non-empty text: the server rejects a whole batch for one malformed item.
    message = String(message || '').trim() || 'Unknown error';
    stack = stack && String(stack);
    const key = message + String(stack).split('\n', 2);
    if (seenErrors[key]) return;
    seenErrors[key] = 1;
    enqueue('errors', { message, stackTrace: stack, context: { url: href(), userAgent: ua }, ...fields });
  };

  const observe = (type, onEntry, options) => {
    try {
      new PerformanceObserver((list) => list.getEntries().forEach(onEntry)).observe({ type, buffered: true, ...options });
    } catch (e) {}
  };
  const interaction = (e) => {
    const id = e.interactionId;
    if (id) interactions[id] = Math.max(interactions[id] || 0, e.duration);
  };

  /** One web-vitals record per page load: LCP, CLS, FID, TTFB and INP (the ~p98 worst interaction). */
  const sendVitals = () => {
    if (vitalsSent || !enabled) return;
    vitalsSent = 1;
    const navEntry = performance.getEntriesByType('navigation')[0];
    const worst = Object.values(interactions).sort((a, b) => b - a);
    if (navEntry) vitals.ttfb = Math.max(navEntry.responseStart - (navEntry.activationStart || 0), 0);
    vitals.inp = worst[(worst.length / 50) | 0]; // skip one worst interaction per 50: ~p98
    enqueue('performance', {
      metricType: 'web_vitals_aggregate',
      url: href(),
      connectionType: nav.connection?.effectiveType,
      ...vitals,
    });
  };

  const onHide = () => {
    sendVitals();
    if (enabled) sendAll(1);
  };

  /** Opt-in click autocapture: `$click` events for elements matching the selectors. */
  const autocapture = (options) => {
    // An array (or a string) of CSS selectors; an array's String() is its comma-joined list.
    const selectors = String(options.selectors || '') || DEFAULT_SELECTORS;
    const ignore = (options.ignoreSelector || '[data-si-ignore],.si-ignore') + ',[data-si-opt-out]';
    const lastClick = {};
    on(
      doc,
      'click',
      (e) => {
        const el = e.target.closest?.(selectors);
        if (!el || el.type == 'password' || el.closest(ignore)) return;
        const tag = el.tagName.toLowerCase();
        const id = el.id;
        const className = el.classList[0] || '';
        let nth = 1;
        for (let s = el; (s = s.previousElementSibling); ) nth += s.tagName == el.tagName;
        const selector = id ? tag + '#' + id : className ? tag + '.' + className : tag + ':nth-of-type(' + nth + ')';
        const t = Date.now();
        if (t - lastClick[selector] < (options.debounceMs ?? 500)) return;
        lastClick[selector] = t;
        const maxText = options.maxTextLength ?? 120;
        let text = (el.innerText || el.textContent || '').replace(/\s+/g, ' ').trim();
        if (text.length > maxText) text = text.slice(0, maxText) + '...';
        const data = {};
        for (const k in el.dataset) if (el.dataset[k]) data[k] = el.dataset[k];
        const [x, y, w, h] = ['x', 'y', 'width', 'height'].map((k) => Math.round(el.getBoundingClientRect()[k]));
        api.trackEvent('$click', {
          tag,
          id,
          className,
          text,
          href: tag == 'a' ? el.href : undefined,
          data,
          selector,
          rect: { x, y, w, h },
        });
      },
      true,
    );
  };

  const start = () => {
    clearInterval(timer);
    timer = setInterval(sendAll, config.flushInterval);
    connect();
  };

  // ---- public API --------------------------------------------------------------------------

  const api = {
    init(key, options) {
      if (config) return;
      const c = (config = {
        apiUrl: '',
        batchSize: 20,
        flushInterval: 5000,
        debug: false,
        transport: 'http',
        wsPath: '/v1/ws',
        ...options,
      });
      if (typeof key != 'string' || !/^pk_/.test(key) || !(c.batchSize >= 1 && c.batchSize <= 100) || !(c.flushInterval >= 1000))
        return (config = log('bad init'));
      c.batchSize |= 0;
      apiKey = key; // pk_ + hex: safe in a query string as it is
      // Default base URL: where this script was loaded from, else this page's origin.
      const script = [...doc.querySelectorAll('script[src*="/sdk/superinsights.js"]')].pop();
      apiUrl = String(c.apiUrl || '').replace(/\/+$/, '') || (script ? new URL(script.src).origin : location.origin);
      try {
        (storage = localStorage).si_client_id ||= uuid();
      } catch (e) {
        storage = { si_client_id: uuid() };
      }
      enabled = 1;

      for (const type of ['click', 'keydown', 'scroll'])
        on(win, type, () => enabled && Date.now() - lastActivity > 1000 && sessionId(), true);
      for (const method of ['pushState', 'replaceState']) {
        const original = history[method];
        history[method] = function () {
          try {
            return original.apply(this, arguments);
          } finally {
            navigated();
          }
        };
      }
      on(win, 'popstate', navigated);
      on(win, 'error', (e) =>
        reportError(e.message, e.error?.stack, {
          errorType: 'window_error',
          sourceFile: e.filename,
          lineNumber: e.lineno,
          columnNumber: e.colno,
        }),
      );
      on(win, 'unhandledrejection', ({ reason }) =>
        reportError(
          typeof reason == 'string' ? reason : reason?.message || 'Unhandled promise rejection',
          reason?.stack,
          { errorType: 'unhandled_rejection' },
        ),
      );
      observe('largest-contentful-paint', (e) => (vitals.lcp = e.startTime));
      observe('first-input', (e) => {
        vitals.fid ??= e.processingStart - e.startTime;
        interaction(e);
      });
      observe('layout-shift', (e) => e.hadRecentInput || (vitals.cls += e.value));
      observe('event', interaction, { durationThreshold: 40 });
      on(doc, 'visibilitychange', () => doc.visibilityState == 'hidden' && onHide());
      on(win, 'pagehide', onHide);
      const auto = c.autocapture;
      if (auto === true || auto?.enabled) autocapture(auto === true ? {} : auto);

      pageview();
      start();
    },

    trackEvent(name, properties) {
      if (typeof name != 'string' || !name.trim()) return;
      properties = { ...properties }; // always a plain object, as the server requires
      const d = properties.durationMs;
      enqueue('events', {
        eventName: name,
        properties,
        durationMs: Number.isFinite(d) && d >= 0 ? d : null,
        userId: user?.userId,
      });
    },

    trackTiming(name, durationMs, properties) {
      api.trackEvent(name, { ...properties, durationMs });
    },

    /** Runs `fn`, records how long it took (even when it throws) and returns its result. */
    time(name, fn, properties) {
      const t0 = now();
      try {
        return fn();
      } finally {
        api.trackTiming(name, now() - t0, properties);
      }
    },

    /** Like time(), for a function returning a promise: recorded when it settles. */
    async timeAsync(name, fn, properties) {
      const t0 = now();
      try {
        return await fn();
      } finally {
        api.trackTiming(name, now() - t0, properties);
      }
    },

    setUser(userId, traits) {
      user = userId == null ? undefined : { userId: String(userId), traits: traits || {} };
    },

    /** Sends everything queued now (and the page's web-vitals record, once). */
    flush() {
      if (enabled) {
        sendVitals();
        sendAll();
      }
    },

    /** Stops collecting and sending; what is already queued stays queued until enable(). */
    disable() {
      enabled = 0;
      clearInterval(timer);
      clearTimeout(wsTimer);
      socket?.close();
      socket = 0;
    },

    enable() {
      if (config && !enabled) {
        enabled = 1;
        start();
      }
    },
  };

  win.SuperInsights ||= api;
})();
