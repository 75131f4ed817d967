// Errors and performance pages: draws the charts (static/js/charts.js, SVG) described in the
// page's `#diagnostics-data` JSON — `{charts: [{id, label, index, series, kind?, unit?, good?,
// poor?}]}`, `series` being the server's time series — counts as bars, web vitals as lines with
// their good/poor thresholds.
(function () {
  "use strict";
  var source = document.getElementById("diagnostics-data");
  if (!source || !window.siCharts) return;
  var spec = JSON.parse(source.textContent);
  var drawn = 0;
  spec.charts.forEach(function (c) {
    var el = document.getElementById(c.id);
    if (!el || !c.series) return;
    siCharts.draw(el, { series: c.series, lines: [{ index: c.index, label: c.label }], kind: c.kind || "bars",
      unit: c.unit || "", good: c.good, poor: c.poor });
    drawn += 1;
  });
  window.siDiagnostics = { charts: function () { return drawn; } };
})();
