// Dashboard: draws the charts (uPlot, vendored) from the embedded JSON and refreshes everything
// from `dashboard/data` every 30 s; auto-refresh turns itself off after 3 failures in a row.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var charts = {};
  var failures = 0;
  var status = document.getElementById("refresh-status");
  var toggle = document.getElementById("auto-refresh");
  var timeframe = new URLSearchParams(location.search).get("timeframe") || data.timeframe;

  function dayTs(d) { return Date.parse(d + "T00:00:00Z") / 1000; }

  function draw(id, days, series) {
    var el = document.getElementById(id);
    var xs = days.map(function (d) { return dayTs(d.date); });
    var cols = [xs].concat(series.map(function (s) { return days.map(function (d) { return d[s.field] == null ? null : d[s.field]; }); }));
    var opts = {
      width: Math.max(el.clientWidth, 240), height: 180,
      series: [{}].concat(series.map(function (s) { return { label: s.label, stroke: s.color, width: 2, points: { show: true } }; })),
      axes: [{}, { size: 50 }], legend: { show: series.length > 1 }
    };
    if (charts[id]) { charts[id].setData(cols); return; }
    charts[id] = new uPlot(opts, cols, el);
  }

  function render(d) {
    draw("chart-views", d.pageViews.viewsByDay, [{ field: "count", label: "Views", color: "#3559e0" }]);
    draw("chart-events", d.events.eventsByDay, [{ field: "count", label: "Events", color: "#0f9d58" }]);
    draw("chart-errors", d.errors.errorsByDay, [{ field: "count", label: "Errors", color: "#c53030" }]);
    draw("chart-vitals", d.performance.metricsByDay, [
      { field: "lcp", label: "LCP", color: "#7c3aed" }, { field: "ttfb", label: "TTFB", color: "#d97706" }]);
    document.querySelectorAll("[data-field]").forEach(function (el) {
      var v = el.getAttribute("data-field").split(".").reduce(function (o, k) { return o == null ? o : o[k]; }, d);
      el.textContent = v == null ? "—" : v;
    });
    fill("top-pages", d.pageViews.topPages.map(function (p) { return [p.url, p.views]; }));
    fill("top-events", d.events.topEvents.map(function (e) { return [e.eventName, e.count]; }));
    var b = d.breakdowns || {};
    ["referrer", "utmSource", "utmMedium", "utmCampaign", "country", "browser", "os", "deviceType"].forEach(function (k) {
      var rows = (b[k] || []).map(function (r) { return [r.value, r.count]; });
      fill("bd-" + k, rows.length ? rows : [["No data", ""]]);
    });
  }

  function fill(id, rows) {
    var body = document.querySelector("#" + id + " tbody");
    body.textContent = "";
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      r.forEach(function (c) { var td = document.createElement("td"); td.textContent = c; tr.appendChild(td); });
      body.appendChild(tr);
    });
  }

  function refresh() {
    if (!toggle.checked) return;
    fetch(location.pathname + "/data?timeframe=" + encodeURIComponent(timeframe), { headers: { Accept: "application/json" }, credentials: "same-origin" })
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
