// Events pages: draws the events chart (static/js/charts.js, SVG) from the embedded series; on the events
// list, refreshes top events and recent occurrences from `live.json` every 30 s (and on demand),
// showing what happened in a status line. Everything from the server is inserted as text.
(function () {
  "use strict";
  var series = JSON.parse(document.getElementById("events-by-day").textContent);
  var el = document.getElementById("chart-events");
  if (el && series && window.siCharts) siCharts.draw(el, { series: series, lines: [{ index: 0, label: "Events" }] });

  var live = document.getElementById("live");
  if (!live) return;
  var status = document.getElementById("live-status");
  var toggle = document.getElementById("live-refresh");
  var failures = 0;

  function ms(v) { return v == null ? "\u2014" : Number(v).toFixed(1) + " ms"; }

  function cell(tr, text, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text == null ? "" : String(text);
    tr.appendChild(td);
    return td;
  }

  // A timestamp as <time>, local and relative (static/js/format.js).
  function timeCell(tr, iso) {
    var td = document.createElement("td");
    var t = document.createElement("time");
    t.setAttribute("datetime", iso || "");
    t.textContent = iso || "";
    var d = iso && window.siFormat ? siFormat.date(iso) : null;
    if (d) { t.textContent = d.text; t.title = d.title; }
    td.appendChild(t);
    tr.appendChild(td);
  }

  function linkCell(tr, name) {
    var td = document.createElement("td");
    var a = document.createElement("a");
    a.href = live.dataset.detailBase + encodeURIComponent(name) + live.dataset.detailQuery;
    a.textContent = name;
    td.appendChild(a);
    tr.appendChild(td);
  }

  function fill(tableId, items, columns, empty, row) {
    var body = document.querySelector("#" + tableId + " tbody");
    body.textContent = "";
    if (!items.length) {
      var tr = document.createElement("tr");
      cell(tr, empty, "muted").colSpan = columns;
      body.appendChild(tr);
      return;
    }
    items.forEach(function (item) {
      var tr = document.createElement("tr");
      row(tr, item);
      body.appendChild(tr);
    });
  }

  function render(data) {
    fill("top-events", data.topEvents || [], 3, "No events in this timeframe.", function (tr, e) {
      linkCell(tr, e.eventName);
      cell(tr, window.siFormat ? siFormat.number(e.count) : e.count, "num");
      timeCell(tr, e.mostRecentTimestamp);
    });
    fill("recent", data.recentOccurrences || [], 5, "No occurrences on this page.", function (tr, o) {
      timeCell(tr, o.timestamp);
      linkCell(tr, o.eventName);
      cell(tr, o.sessionId, "mono break");
      cell(tr, ms(o.durationMs));
      var code = document.createElement("code");
      code.className = "props";
      code.textContent = JSON.stringify(o.properties == null ? {} : o.properties);
      var td = document.createElement("td");
      td.appendChild(code);
      tr.appendChild(td);
    });
    var p = data.recentPagination;
    if (p) {
      document.getElementById("recent-pagination").textContent =
        "Page " + p.page + " of " + p.totalPages + " (" + p.total + " occurrences)";
    }
  }

  function refresh() {
    status.textContent = "Refreshing\u2026";
    return fetch(live.dataset.liveUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (data) {
        failures = 0;
        render(data);
        status.textContent = "Updated " + new Date().toLocaleTimeString();
      })
      .catch(function (e) {
        failures += 1;
        status.textContent = "Refresh failed (" + e.message + ")";
        if (failures >= 3) {
          toggle.checked = false;
          status.textContent = "Live refresh stopped after 3 failed refreshes.";
        }
      });
  }

  setInterval(function () { if (toggle.checked) refresh(); }, 30000);
  toggle.addEventListener("change", function () {
    if (toggle.checked) { failures = 0; refresh(); } else { status.textContent = "Live refresh paused."; }
  });
  window.siEvents = { refresh: refresh };
})();
