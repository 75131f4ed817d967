// Errors and performance pages: draws the day charts (uPlot, vendored) described in the page's
// `#diagnostics-data` JSON — `{charts: [{id, label, color, days: [{date, value}], good?, poor?}]}` —
// with dashed threshold lines when `good`/`poor` are given, and keeps them as wide as their box.
(function () {
  "use strict";
  var source = document.getElementById("diagnostics-data");
  if (!source || typeof uPlot === "undefined") return;
  var spec = JSON.parse(source.textContent);
  var drawn = [];

  function dayTs(d) { return Date.parse(d + "T00:00:00Z") / 1000; }

  function flat(n, v) { var out = []; for (var i = 0; i < n; i++) out.push(v); return out; }

  function draw(chart) {
    var el = document.getElementById(chart.id);
    if (!el) return;
    var days = chart.days.filter(function (d) { return d.value != null; });
    if (days.length === 0) {
      var p = document.createElement("p");
      p.className = "muted chart-empty";
      p.textContent = "No data in this timeframe.";
      el.appendChild(p);
      return;
    }
    var xs = days.map(function (d) { return dayTs(d.date); });
    var data = [xs, days.map(function (d) { return d.value; })];
    var series = [{}, { label: chart.label, stroke: chart.color, width: 2, points: { show: true } }];
    if (chart.good != null) {
      data.push(flat(xs.length, chart.good));
      series.push({ label: "Good ≤ " + chart.good, stroke: "#1e6b3a", width: 1, dash: [6, 4], points: { show: false } });
    }
    if (chart.poor != null) {
      data.push(flat(xs.length, chart.poor));
      series.push({ label: "Poor > " + chart.poor, stroke: "#c53030", width: 1, dash: [6, 4], points: { show: false } });
    }
    var opts = {
      width: Math.max(el.clientWidth, 240), height: 200,
      series: series, axes: [{}, { size: 56 }], legend: { show: series.length > 2 },
      scales: { x: { time: true } }
    };
    drawn.push({ el: el, plot: new uPlot(opts, data, el) });
  }

  spec.charts.forEach(draw);

  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      drawn.forEach(function (c) { c.plot.setSize({ width: Math.max(c.el.clientWidth, 240), height: 200 }); });
    }, 150);
  });
  window.siDiagnostics = { charts: function () { return drawn.length; } };
})();
