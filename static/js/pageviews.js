// Page views: draws the views-per-day chart (uPlot, vendored) from the embedded JSON.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("pageviews-data").textContent);
  var el = document.getElementById("chart-views");
  var days = data.viewsByDay || [];
  var xs = days.map(function (d) { return Date.parse(d.date + "T00:00:00Z") / 1000; });
  var ys = days.map(function (d) { return d.count; });
  new uPlot({
    width: Math.max(el.clientWidth, 240), height: 200,
    series: [{}, { label: "Views", stroke: "#3559e0", width: 2, points: { show: true } }],
    axes: [{}, { size: 50 }], legend: { show: false }
  }, [xs, ys], el);
})();
