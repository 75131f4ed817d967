// Reports: the new-report form (generate, apply a filter template, save the current filters as
// one), the detail page's live progress (polls `/status` every 2 s while pending or generating;
// a progress bar, stages, elapsed and remaining time; retry and delete), and the interactive
// view (section tabs, sortable tables). Every value is set as text; no inline script.
(function () {
  "use strict";

  function el(tag, text) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function send(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().then(function (b) { return { status: r.status, body: b }; });
    });
  }

  function readJson(id) {
    var node = document.getElementById(id);
    if (!node) return null;
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }

  // -- the new-report form ------------------------------------------------------------------
  var form = document.getElementById("report-form");
  if (form) {
    var root = document.getElementById("report-new");
    var base = root.dataset.base, csrf = root.dataset.csrf;
    var statusEl = document.getElementById("report-form-status");
    var format = document.getElementById("report-format");
    var csvLabel = document.getElementById("csv-mode-label");
    var timeframe = document.getElementById("report-timeframe");
    var start = document.getElementById("report-start");
    var end = document.getElementById("report-end");
    var select = document.getElementById("template-select");
    var templates = readJson("report-templates") || [];

    var sync = function () {
      csvLabel.hidden = format.value !== "csv";
      var custom = timeframe.value === "custom";
      start.hidden = !custom;
      end.hidden = !custom;
    };
    format.addEventListener("change", sync);
    timeframe.addEventListener("change", sync);
    sync();

    var addTemplate = function (t) {
      var o = el("option", t.name);
      o.value = t._id;
      select.appendChild(o);
    };
    templates.forEach(addTemplate);

    var localInput = function (iso) {
      if (!iso) return "";
      var d = new Date(iso);
      var pad = function (n) { return String(n).padStart(2, "0"); };
      return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
    };

    document.getElementById("template-apply").addEventListener("click", function () {
      var t = templates.filter(function (x) { return x._id === select.value; })[0];
      if (!t) return;
      var f = t.filters || {};
      form.querySelectorAll("[data-filter]").forEach(function (input) {
        var k = input.dataset.filter;
        input.value = "";
        if (k === "metaKey" || k === "metaValue") return;
        if (f[k]) input.value = f[k];
      });
      var meta = f.meta || {};
      var keys = Object.keys(meta);
      if (keys.length) {
        form.querySelector("[data-filter=metaKey]").value = keys[0];
        form.querySelector("[data-filter=metaValue]").value = meta[keys[0]];
      }
      if (t.timeframe) {
        timeframe.value = t.timeframe;
        if (t.timeframe === "custom") {
          start.value = localInput(t.startDate);
          end.value = localInput(t.endDate);
        }
      }
      sync();
      statusEl.textContent = "Template \u201c" + t.name + "\u201d applied.";
    });

    var current = function () {
      var body = {};
      form.querySelectorAll("[data-filter]").forEach(function (input) {
        if (input.value.trim()) body[input.dataset.filter] = input.value.trim();
      });
      body.timeframe = timeframe.value;
      if (timeframe.value === "custom") {
        if (start.value) body.startDate = new Date(start.value).toISOString();
        if (end.value) body.endDate = new Date(end.value).toISOString();
      }
      return body;
    };

    document.getElementById("template-save").addEventListener("click", function () {
      var body = current();
      body.name = document.getElementById("template-name").value;
      send(base + "/filter-templates", csrf, body).then(function (r) {
        if (r.status === 201) {
          templates.unshift(r.body.data);
          addTemplate(r.body.data);
          select.value = r.body.data._id;
          statusEl.textContent = "Template \u201c" + r.body.data.name + "\u201d saved.";
        } else {
          statusEl.textContent = (r.body && r.body.error) || "Could not save the template.";
        }
      });
    });

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var body = current();
      body.name = document.getElementById("report-name").value;
      body.dataType = document.getElementById("report-datatype").value;
      body.format = format.value;
      if (format.value === "csv") body.csvMode = document.getElementById("report-csvmode").value;
      body.includeAiInsights = document.getElementById("report-ai").checked;
      if (select.value) body.filterTemplateId = select.value;
      statusEl.textContent = "Queueing\u2026";
      send(base + "/reports/generate", csrf, body).then(function (r) {
        if (r.status === 202) {
          window.location.assign(r.body.detailUrl);
        } else {
          statusEl.textContent = (r.body && r.body.error) || "Could not start the report.";
        }
      });
    });
  }

  // -- the detail page: live progress -------------------------------------------------------
  var detail = document.getElementById("report-detail");
  if (detail) {
    var dbase = detail.dataset.base, dcsrf = detail.dataset.csrf, id = detail.dataset.report;
    var bar = document.getElementById("report-progress");
    var show = function (s) {
      bar.value = s.progress;
      bar.textContent = s.progress + "%";
      document.getElementById("report-percent").textContent = s.progress + "%";
      var badge = document.getElementById("report-status");
      badge.textContent = s.status;
      badge.className = "badge status-" + s.status;
      document.getElementById("report-message").textContent = s.message;
      document.getElementById("report-elapsed").textContent = s.elapsedSeconds;
      document.getElementById("report-remaining").textContent = s.estimatedSecondsRemaining;
      var list = document.getElementById("report-stages");
      list.textContent = "";
      (s.stages || []).forEach(function (st) {
        var li = el("li", st.stage + (st.completedAt ? " \u2713" : " \u2026") + (st.errorMessage ? " \u2014 " + st.errorMessage : ""));
        li.dataset.stage = st.stage;
        list.appendChild(li);
      });
      var done = s.status === "completed";
      document.getElementById("report-download").hidden = !done;
      document.getElementById("report-view").hidden = !done;
      var retry = document.getElementById("report-retry");
      if (retry) retry.hidden = s.status !== "failed";
      return s.status === "pending" || s.status === "generating";
    };
    var poll = function () {
      fetch(dbase + "/reports/" + id + "/status", { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (s) { if (show(s)) window.setTimeout(poll, 2000); })
        .catch(function () { window.setTimeout(poll, 4000); });
    };
    var initial = readJson("report-initial-status");
    if (!initial || show(initial)) window.setTimeout(poll, initial ? 1000 : 0);

    var del = document.getElementById("report-delete");
    if (del) del.addEventListener("click", function () {
      if (!window.confirm("Delete this report?")) return;
      send(dbase + "/reports/" + id + "/delete", dcsrf).then(function (r) {
        if (r.status === 200) window.location.assign(dbase + "/reports");
      });
    });
    var retryBtn = document.getElementById("report-retry");
    if (retryBtn) retryBtn.addEventListener("click", function () {
      var body = readJson("report-retry-body") || {};
      send(dbase + "/reports/generate", dcsrf, body).then(function (r) {
        if (r.status === 202) window.location.assign(r.body.detailUrl);
        else document.getElementById("report-message").textContent = (r.body && r.body.error) || "Could not retry.";
      });
    });
  }

  // -- the interactive view -----------------------------------------------------------------
  var view = document.getElementById("report-view-root");
  if (view) {
    var tabs = view.querySelectorAll(".report-tabs a");
    var sections = view.querySelectorAll(".report-section[data-section]");
    var select = function (name) {
      sections.forEach(function (s) { s.hidden = name !== "all" && s.dataset.section !== name; });
      tabs.forEach(function (t) { t.setAttribute("aria-current", t.dataset.section === name ? "true" : "false"); });
    };
    tabs.forEach(function (t) {
      t.addEventListener("click", function (e) { e.preventDefault(); select(t.dataset.section); });
    });
    view.querySelectorAll(".report-table").forEach(function (table) {
      table.querySelectorAll("th").forEach(function (th, col) {
        th.tabIndex = 0;
        th.setAttribute("role", "button");
        var asc = false;
        var sortBy = function () {
          asc = !asc;
          var body = table.tBodies[0];
          var rows = Array.prototype.slice.call(body.rows);
          rows.sort(function (a, b) {
            var x = a.cells[col] ? a.cells[col].textContent : "";
            var y = b.cells[col] ? b.cells[col].textContent : "";
            var nx = parseFloat(x), ny = parseFloat(y);
            var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
            return asc ? c : -c;
          });
          rows.forEach(function (r) { body.appendChild(r); });
          table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
          th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        };
        th.addEventListener("click", sortBy);
        th.addEventListener("keydown", function (e) { if (e.key === "Enter") sortBy(); });
      });
    });
  }
})();
