// Realtime (docs/features/realtime.md): follows the project's live stream (Server-Sent Events)
// named by the element with `data-stream`: the visitors of the last 5 minutes go into
// #live-visitors, page views and events into #live-feed (newest first, 20 lines), and every
// `[data-live-status]` turns from "Waiting for your first event…" into "Receiving data" when a
// new one arrives. A stream ended by sign-out or a revoked link is not reopened; one ended by a
// server shutdown is (EventSource reconnects by itself, to this or another instance).
(function () {
  'use strict';
  var box = document.querySelector('[data-stream]');
  if (!box || !window.EventSource) return;
  var visitors = document.getElementById('live-visitors');
  var feed = document.getElementById('live-feed');
  var state = document.getElementById('live-state');
  var KINDS = { pageviews: 'Page view', events: 'Event', errors: 'Error', performance: 'Web vitals' };
  var MAX_LINES = 20;

  function say(text) { if (state) state.textContent = text; }

  function received() {
    document.querySelectorAll('[data-live-status]').forEach(function (s) {
      if (s.classList.contains('ok')) return;
      s.textContent = 'Receiving data';
      s.classList.add('ok');
      if (document.getElementById('first-run')) {
        var a = document.createElement('a');
        a.href = window.location.href;
        a.textContent = 'Show the figures';
        s.append(' — ', a);
      }
    });
  }

  function add(hit) {
    if (!feed) return;
    var li = document.createElement('li');
    var time = document.createElement('time');
    var at = new Date(hit.at);
    time.dateTime = at.toISOString();
    time.textContent = at.toLocaleTimeString();
    var kind = document.createElement('span');
    kind.className = 'badge';
    kind.textContent = KINDS[hit.kind] || hit.kind;
    var label = document.createElement('span');
    label.className = 'live-label';
    label.textContent = hit.label;
    li.append(time, ' ', kind, ' ', label);
    if (hit.country) li.append(' ', hit.country);
    feed.prepend(li);
    while (feed.children.length > MAX_LINES) feed.lastElementChild.remove();
  }

  var source = new EventSource(box.getAttribute('data-stream'));
  source.addEventListener('open', function () { say('live'); box.setAttribute('data-live', 'open'); });
  source.addEventListener('visitors', function (e) {
    var d = JSON.parse(e.data);
    if (visitors) visitors.textContent = Number(d.visitors).toLocaleString();
  });
  source.addEventListener('hits', function (e) {
    var d = JSON.parse(e.data);
    d.hits.forEach(add);
    if (d.count > 0) received();
  });
  source.addEventListener('end', function (e) {
    var reason = JSON.parse(e.data).reason;
    box.setAttribute('data-live', 'ended-' + reason);
    if (reason !== 'shutdown') {
      source.close();
      say('live updates stopped');
    } else {
      say('reconnecting…');
    }
  });
  source.addEventListener('error', function () {
    if (source.readyState === EventSource.CLOSED) say('live updates stopped');
  });
})();
