// AI Analysis page: preset picker, range, segment filters, run + progress polling, history.
// Results arrive as server-sanitised HTML (`resultHtml`); every other value is set as text.
(function () {
  "use strict";
  var root = document.getElementById("ai-controls");
  if (!root) return;
  var base = root.dataset.base;
  var csrf = root.dataset.csrf;
  var form = document.getElementById("ai-form");
  var statusEl = document.getElementById("ai-status");
  var runBtn = document.getElementById("ai-run");
  var resultCard = document.getElementById("ai-result-card");
  var resultEl = document.getElementById("ai-result");
  var resultMeta = document.getElementById("ai-result-meta");
  var history = document.querySelector("#ai-history tbody");
  var filters = document.getElementById("ai-filters");
  var FIELDS = ["clientId", "userId", "deviceType", "browser", "os", "utmSource", "utmMedium", "utmCampaign", "meta"];
  var polling = null;

  function el(tag, text) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (b) { return { status: r.status, body: b }; }); });
  }

  function addFilterRow() {
    var row = el("div"); row.className = "row ai-filter";
    var field = el("select"); field.setAttribute("aria-label", "Filter field");
    FIELDS.forEach(function (f) { var o = el("option", f === "meta" ? "metadata key" : f); o.value = f; field.appendChild(o); });
    var key = el("input"); key.placeholder = "key"; key.className = "ai-meta-key"; key.hidden = true; key.setAttribute("aria-label", "Metadata key");
    var value = el("input"); value.placeholder = "value"; value.setAttribute("aria-label", "Filter value");
    var remove = el("button", "Remove"); remove.type = "button"; remove.className = "link";
    field.addEventListener("change", function () { key.hidden = field.value !== "meta"; });
    remove.addEventListener("click", function () { row.remove(); });
    row.append(field, key, value, remove);
    filters.appendChild(row);
  }
  document.getElementById("ai-add-filter").addEventListener("click", addFilterRow);

  function loadPresets() {
    getJSON("/ai-analysis/presets").then(function (r) {
      if (!r.body || !r.body.success) return;
      var select = document.getElementById("ai-preset");
      [["Builtin", r.body.data.builtins], ["Mine", r.body.data.mine], ["Public", r.body.data.public]].forEach(function (g) {
        if (!g[1] || !g[1].length) return;
        var group = el("optgroup"); group.label = g[0];
        g[1].forEach(function (p) { var o = el("option", p.name); o.value = p._id; group.appendChild(o); });
        select.appendChild(group);
      });
    });
  }

  function body() {
    var mode = form.querySelector("input[name=mode]:checked").value;
    var out = { mode: mode, presetId: document.getElementById("ai-preset").value || undefined };
    if (mode === "custom") {
      var s = document.getElementById("ai-start").value, e = document.getElementById("ai-end").value;
      out.start = s ? new Date(s).toISOString() : "";
      out.end = e ? new Date(e).toISOString() : "";
    } else {
      out.timeframe = document.getElementById("ai-timeframe").value;
    }
    var meta = {};
    filters.querySelectorAll(".ai-filter").forEach(function (row) {
      var inputs = row.querySelectorAll("input");
      var field = row.querySelector("select").value, key = inputs[0].value.trim(), value = inputs[1].value.trim();
      if (!value) return;
      if (field === "meta") { if (key) meta[key] = value; } else { out[field] = value; }
    });
    if (Object.keys(meta).length) out.meta = meta;
    return out;
  }

  function showRun(run) {
    resultCard.hidden = false;
    resultMeta.textContent = "(" + run.status + (run.model ? ", " + run.model : "") + ")";
    if (run.status === "completed") {
      resultEl.innerHTML = run.resultHtml || ""; // sanitised on the server
    } else if (run.status === "failed") {
      resultEl.replaceChildren(el("p", run.errorMessage || "The analysis failed."));
    } else {
      resultEl.replaceChildren(el("p", "Working: " + (run.progress || run.status) + "…"));
    }
  }

  function poll(runId) {
    if (polling) clearTimeout(polling);
    getJSON(base + "/ai-analysis/runs/" + runId).then(function (r) {
      if (!r.body || !r.body.success) { statusEl.textContent = "Could not load the run."; runBtn.disabled = false; return; }
      var run = r.body.data;
      statusEl.textContent = run.status + (run.progress ? " — " + run.progress : "");
      statusEl.dataset.status = run.status;
      showRun(run);
      if (run.status === "queued" || run.status === "running") {
        polling = setTimeout(function () { poll(runId); }, 500);
      } else {
        runBtn.disabled = false;
        loadHistory();
      }
    }).catch(function () { polling = setTimeout(function () { poll(runId); }, 1500); });
  }

  function loadHistory() {
    getJSON(base + "/ai-analysis/runs?limit=30").then(function (r) {
      if (!r.body || !r.body.success) return;
      history.replaceChildren();
      r.body.data.forEach(function (run) {
        var tr = el("tr"); tr.className = "ai-run"; tr.tabIndex = 0; tr.dataset.runId = run._id;
        var preset = run.presetId || "General";
        [new Date(run.createdAt).toLocaleString(), run.timeframePreset || (run.start.slice(0, 10) + " → " + run.end.slice(0, 10)), preset, run.model, run.status]
          .forEach(function (v) { tr.appendChild(el("td", v)); });
        var open = function () { poll(run._id); };
        tr.addEventListener("click", open);
        tr.addEventListener("keydown", function (e) { if (e.key === "Enter") open(); });
        history.appendChild(tr);
      });
    });
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    runBtn.disabled = true;
    statusEl.textContent = "Starting…";
    fetch(base + "/ai-analysis/run", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body())
    }).then(function (r) { return r.json(); }).then(function (b) {
      if (!b.success) { statusEl.textContent = b.error || "Could not start the analysis."; runBtn.disabled = false; return; }
      statusEl.textContent = "queued";
      loadHistory();
      poll(b.runId);
    }).catch(function () { statusEl.textContent = "Network error."; runBtn.disabled = false; });
  });

  loadPresets();
  loadHistory();
})();
