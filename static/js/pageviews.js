// Page views: draws the views chart (static/js/charts.js, SVG) from the embedded JSON's series.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("pageviews-data").textContent);
  var el = document.getElementById("chart-views");
  if (el && data.series && window.siCharts) siCharts.draw(el, { series: data.series, lines: [{ index: 0, label: "Page views" }] });
})();
