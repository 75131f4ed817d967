// Events pages: draws the per-day chart (uPlot, vendored) from the embedded JSON; on the events
// list, refreshes top events and recent occurrences from `live.json` every 30 s (and on demand),
// showing what happened in a status line. Everything from the server is inserted as text.
(function () {
  "use strict";
  var days = JSON.parse(document.getElementById("events-by-day").textContent) || [];
  var el = document.getElementById("chart-events");
  new uPlot({
    width: Math.max(el.clientWidth, 240), height: 200,
    series: [{}, { label: "Events", stroke: "#0f9d58", width: 2, points: { show: true } }],
    axes: [{}, { size: 50 }], legend: { show: false }
  }, [days.map(function (d) { return Date.parse(d.date + "T00:00:00Z") / 1000; }),
      days.map(function (d) { return d.count; })], el);

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
      cell(tr, e.count);
      cell(tr, e.mostRecentTimestamp);
    });
    fill("recent", data.recentOccurrences || [], 5, "No occurrences on this page.", function (tr, o) {
      cell(tr, o.timestamp);
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
