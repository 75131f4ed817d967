// Dashboard: draws the charts (static/js/charts.js, SVG) from the embedded JSON's `charts` and refreshes everything
// from `dashboard/data` (with the page's own query: timeframe and filters) every 30 s;
// auto-refresh turns itself off after 3 failures in a row. Tables: rows are links that add a
// filter (rendered by the server; redrawn here the same way on refresh; an error group's row
// filters by its `signature` and links to the errors page filtered by it), "Show all" expands,
// and the filter form leaves empty fields out of the URL. With `compare=1` the page-view chart
// carries the previous period (`charts.viewsPrevious`) as a dashed overlay, bucket by bucket.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var charts = {};
  var failures = 0;
  var status = document.getElementById("refresh-status");
  var toggle = document.getElementById("auto-refresh");
  var query = new URLSearchParams(location.search);
  if (!query.get("timeframe")) query.set("timeframe", data.timeframe);
  query.delete("format");
  query.delete("table");

  var CHARTS = [
    ["chart-views", "views", [{ index: 0, label: "Page views" }], "bars", ""],
    ["chart-events", "events", [{ index: 0, label: "Events" }], "bars", ""],
    ["chart-errors", "errors", [{ index: 0, label: "Errors" }], "bars", ""],
    ["chart-vitals", "vitals", [{ index: 0, label: "LCP" }, { index: 1, label: "TTFB" }], "line", "ms"]
  ];

  function fmt(v) { return window.siFormat ? siFormat.number(v) : String(v); }

  // The page views with the previous period beside each bucket, as a second line.
  function withPrevious(series, previous) {
    var points = series.points.map(function (p, i) {
      var q = previous.points[i];
      return { start: p.start, end: p.end, partial: p.partial, values: [p.values[0], q ? q.values[0] : null],
        prev: q ? { start: q.start, end: q.end } : null };
    });
    return { bucket: series.bucket, lines: series.lines.concat(["viewsPrevious"]), points: points };
  }

  function render(d) {
    CHARTS.forEach(function (c) {
      var el = document.getElementById(c[0]);
      if (!el || !d.charts || !window.siCharts) return;
      var series = d.charts[c[1]], lines = c[2];
      if (c[1] === "views" && d.charts.viewsPrevious) {
        series = withPrevious(series, d.charts.viewsPrevious);
        lines = lines.concat([{ index: 1, label: "Previous period", overlay: true }]);
      }
      siCharts.draw(el, { series: series, lines: lines, kind: c[3], unit: c[4] });
    });
    document.querySelectorAll("[data-field]").forEach(function (el) {
      var v = el.getAttribute("data-field").split(".").reduce(function (o, k) { return o == null ? o : o[k]; }, d);
      el.textContent = v == null ? "—" : typeof v === "number" ? fmt(v) : v;
    });
    // Visit figures are ratios: written as the server writes them.
    document.querySelectorAll("[data-format]").forEach(function (el) {
      var v = el.getAttribute("data-field").split(".").reduce(function (o, k) { return o == null ? o : o[k]; }, d);
      el.textContent = v == null ? "—" : visitFigure(el.getAttribute("data-format"), v);
    });
    var score = d.performance.performanceScore || {};
    var scoreEl = document.querySelector('[data-field="performance.performanceScore.score"]');
    if (scoreEl && !score.measured) scoreEl.textContent = "—";
    var prev = d.previous || {};
    setDelta("views", d.pageViews.totalViews, prev.totalViews, false, false);
    setDelta("visitors", d.pageViews.uniqueVisitors, prev.uniqueVisitors, false, false);
    setDelta("visits", (d.visits || {}).visits, prev.visits, false, false);
    setDelta("events", d.events.totalEvents, prev.totalEvents, false, false);
    setDelta("errors", d.errors.totalErrors, prev.totalErrors, false, true);
    setDelta("score", score.measured ? score.score : null, prev.performanceScore, true, false);
    var b = d.breakdowns || {};
    document.querySelectorAll("[data-param]").forEach(function (card) {
      var name = card.id.replace(/^table-/, "");
      if (name === "error") {
        var groups = (d.errors.topGroups || []).map(function (g) { return { value: g.message, key: g.signature, count: g.count }; });
        fill(card, "signature", groups, d.errors.totalErrors);
        return;
      }
      var total = name === "event" ? d.events.totalEvents
        : /^(entry|exit)Page$/.test(name) ? (d.visits || {}).visits : d.pageViews.totalViews;
      fill(card, card.getAttribute("data-param"), b[name] || [], total);
    });
  }

  // A visit KPI's value: a percentage, a duration (ms) or views per visit.
  function visitFigure(format, v) {
    if (format === "percent") return Math.round(v) + "%";
    if (format === "ratio") return v.toFixed(2);
    var s = Math.round(v / 1000);
    return s < 60 ? s + " s" : Math.floor(s / 60) + " min " + (s % 60) + " s";
  }

  // The comparison with the previous period, worded like the server renders it.
  function setDelta(key, now, before, points, upIsBad) {
    var el = document.querySelector('[data-delta="' + key + '"]');
    if (!el) return;
    var arrow = "", text, cls = "flat";
    if (now == null || before == null) text = "nothing to compare with the previous period";
    else if (now === before) { arrow = "→"; text = "no change from the previous period"; }
    else {
      var up = now > before, word = up ? "up" : "down", diff = Math.abs(now - before);
      if (points) text = word + " " + fmt(diff) + " points from " + fmt(before) + " in the previous period";
      else if (before === 0) text = word + " from 0 in the previous period";
      else text = word + " " + fmt(Math.round(diff * 100 / before)) + "% from " + fmt(before) + " in the previous period";
      arrow = up ? "▲" : "▼";
      cls = (up ? "up " : "down ") + (up !== upIsBad ? "good" : "bad");
    }
    el.className = "delta " + cls;
    el.textContent = "";
    var a = document.createElement("span");
    a.setAttribute("aria-hidden", "true");
    a.textContent = arrow;
    el.appendChild(a);
    el.appendChild(document.createTextNode(" " + text));
  }

  // An error group's link to the errors page filtered by it, the span kept.
  function detailLink(r) {
    var q = new URLSearchParams();
    ["timeframe", "from", "to"].forEach(function (k) { if (query.get(k)) q.set(k, query.get(k)); });
    q.set("signature", r.key);
    var a = document.createElement("a");
    a.className = "row-detail";
    a.href = location.pathname.replace(/\/dashboard$/, "/errors") + "?" + q.toString();
    a.textContent = "Details";
    var hidden = document.createElement("span");
    hidden.className = "sr-only";
    hidden.textContent = " of " + r.value + " on the errors page";
    a.appendChild(hidden);
    var frag = document.createDocumentFragment();
    frag.appendChild(document.createTextNode(" "));
    frag.appendChild(a);
    return frag;
  }

  function share(n, total) { return total ? (n * 100 / total).toFixed(1) + "%" : "0.0%"; }

  // Redraws one table like templates/projects/table.html does.
  function fill(card, param, rows, total) {
    var body = card.querySelector("tbody");
    var expanded = card.classList.contains("expanded");
    body.textContent = "";
    if (!rows.length) rows = null;
    (rows || [{ value: "No data", count: "" }]).forEach(function (r, i) {
      var tr = document.createElement("tr");
      var label = document.createElement("td");
      if (rows) {
        label.className = "label";
        var bar = document.createElement("span");
        bar.className = "bar w" + (total ? Math.min(100, Math.round(r.count * 20 / total) * 5) : 0);
        bar.setAttribute("aria-hidden", "true");
        var a = document.createElement("a");
        var q = new URLSearchParams(query);
        q.set(param, r.key || r.value);
        a.href = location.pathname + "?" + q.toString();
        a.title = "Filter by " + r.value;
        a.textContent = r.value;
        label.appendChild(bar);
        label.appendChild(a);
        if (r.key) label.appendChild(detailLink(r));
      } else { label.className = "muted"; label.textContent = r.value; }
      tr.appendChild(label);
      [r.count, rows ? share(r.count, total) : ""].forEach(function (c, j) {
        var td = document.createElement("td");
        td.textContent = j === 0 && c !== "" ? fmt(c) : c;
        tr.appendChild(td);
      });
      if (i >= 5) { tr.className = "extra"; tr.hidden = !expanded; }
      body.appendChild(tr);
    });
    if (window.siFormat) siFormat.apply(card);
  }

  // "Show all N" / "Show fewer".
  document.addEventListener("click", function (e) {
    var button = e.target.closest("button.expand");
    if (!button) return;
    var card = button.closest("[data-param]");
    var open = !card.classList.contains("expanded");
    card.classList.toggle("expanded", open);
    card.querySelectorAll("tr.extra").forEach(function (tr) { tr.hidden = !open; });
    button.setAttribute("aria-expanded", String(open));
    button.textContent = open ? "Show fewer" : button.getAttribute("data-more");
  });

  // The filter form: empty fields are not filters, so they stay out of the URL.
  var form = document.getElementById("filter-form");
  if (form) form.addEventListener("submit", function () {
    form.querySelectorAll("input[name]").forEach(function (input) { if (!input.value.trim()) input.disabled = true; });
  });

  function refresh() {
    if (!toggle.checked) return;
    fetch(location.pathname + "/data?" + query.toString(), { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (body) { failures = 0; data = body.data; render(data); status.textContent = "Updated " + new Date().toLocaleTimeString(); })
      .catch(function (e) {
        failures += 1;
        status.textContent = "Refresh failed (" + e.message + ")";
        if (failures >= 3) { toggle.checked = false; status.textContent = "Auto-refresh stopped after 3 failed refreshes."; }
      });
  }

  render(data);
  window.siDashboard = { refresh: refresh, failures: function () { return failures; } };
  setInterval(refresh, 30000);
})();
