// Time charts drawn as SVG from the server's series (`analytics::series`: `{bucket, lines,
// points: [{start, end, partial, values}]}`): counts as bars, averages as lines, the y-axis from
// 0, partial buckets (the current hour, a range's cut first day) hatched and labelled, a tooltip
// on hover and on keyboard focus (arrow keys, Home, End), redrawn when its box resizes, and a
// table of the same figures for screen readers and anyone who prefers numbers.
// A line with `overlay: true` (the previous period on the dashboard) is always drawn as a dashed
// line over the bars, and its points may carry `prev: {start, end}`: the earlier bucket it
// stands beside, named in the tooltip and the table.
// `siCharts.draw(el, {series, lines: [{index, label, overlay?}], kind: "bars"|"line", unit, good, poor, title})`.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var H = 200, M = { top: 12, right: 12, bottom: 28, left: 52 };
  var lang = (document.documentElement.getAttribute("data-locale") || navigator.language || "en");
  var num = new Intl.NumberFormat(lang, { maximumFractionDigits: 1 });
  var seq = 0;

  function svgEl(name, attrs) {
    var e = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }

  // Labels of a bucket start: local time for minutes and hours, the UTC calendar for days+
  // (the server's days are UTC days).
  function fmt(bucket, ms, long) {
    var d = new Date(ms);
    if (bucket === "minute" || bucket === "hour") {
      return d.toLocaleString(lang, long ? { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }
        : { hour: "2-digit", minute: "2-digit" });
    }
    if (bucket === "month") return d.toLocaleDateString(lang, { month: long ? "long" : "short", year: "numeric", timeZone: "UTC" });
    var day = d.toLocaleDateString(lang, long ? { weekday: "short", day: "numeric", month: "short", year: "numeric", timeZone: "UTC" }
      : { day: "numeric", month: "short", timeZone: "UTC" });
    return bucket === "week" ? (long ? "Week of " : "") + day : day;
  }

  var NOUN = { minute: "minute", hour: "hour", day: "day", week: "week", month: "month" };

  function bucketLabel(bucket, p) {
    var text = fmt(p.bucket || bucket, p.start, true);
    if (bucket === "minute" || bucket === "hour") text += " – " + fmt(bucket, p.end, false);
    return text;
  }

  function value(v, unit) { return v == null ? "no data" : num.format(v) + (unit ? " " + unit : ""); }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v))), n = v / p;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * p;
  }

  function draw(el, spec) {
    el.siSpec = spec;
    if (!el.siObserved && typeof ResizeObserver !== "undefined") {
      el.siObserved = true;
      var last = el.clientWidth;
      new ResizeObserver(function () {
        if (el.clientWidth !== last) { last = el.clientWidth; render(el); }
      }).observe(el);
    }
    render(el);
  }

  function render(el) {
    var spec = el.siSpec, s = spec.series || { points: [], bucket: "day" };
    var pts = s.points || [], lines = spec.lines, kind = spec.kind || "bars";
    var id = el.id || ("chart-" + (++seq));
    var active = el.siActive == null ? -1 : el.siActive;
    el.textContent = "";
    el.classList.add("si-chart");
    var W = Math.max(el.clientWidth, 200), iw = W - M.left - M.right, ih = H - M.top - M.bottom;
    var any = pts.some(function (p) { return lines.some(function (l) { return p.values[l.index] != null && (kind === "line" || p.values[l.index] > 0); }); });
    var max = 0;
    pts.forEach(function (p) { lines.forEach(function (l) { var v = p.values[l.index]; if (v != null && v > max) max = v; }); });
    if (spec.good != null && spec.good < max * 2) max = Math.max(max, spec.good);
    var top = niceMax(max);
    var n = pts.length, step = n ? iw / n : iw;
    var x = function (i) { return M.left + i * step; };
    var y = function (v) { return M.top + ih - (v / top) * ih; };
    var noun = NOUN[s.bucket] || "bucket";
    var title = (spec.title || lines.map(function (l) { return l.label; }).join(" and ")) + " per " + noun;
    var svg = svgEl("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", tabindex: "0", "class": "chart-svg",
      "aria-label": title + ", " + n + " " + noun + "s from 0 to " + num.format(top) + (any ? "" : ", no data") + ". Use the arrow keys to read each " + noun + "." });
    // Axes: y from 0 with three grid lines.
    [0, 0.5, 1].forEach(function (f) {
      var v = top * f, yy = y(v);
      svg.appendChild(svgEl("line", { x1: M.left, x2: W - M.right, y1: yy, y2: yy, "class": "grid" }));
      var t = svgEl("text", { x: M.left - 6, y: yy + 4, "text-anchor": "end", "class": "tick" });
      t.textContent = num.format(v);
      svg.appendChild(t);
    });
    var every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(iw / 70))));
    pts.forEach(function (p, i) {
      if (i % every) return;
      var t = svgEl("text", { x: x(i) + step / 2, y: H - 8, "text-anchor": "middle", "class": "tick" });
      t.textContent = fmt(s.bucket, p.start, false);
      svg.appendChild(t);
    });
    [["good", spec.good], ["poor", spec.poor]].forEach(function (g) {
      if (g[1] == null || g[1] > top) return;
      svg.appendChild(svgEl("line", { x1: M.left, x2: W - M.right, y1: y(g[1]), y2: y(g[1]), "class": "threshold " + g[0] }));
    });
    var barLines = lines.filter(function (l) { return !l.overlay; }).length || 1;
    lines.forEach(function (l, li) {
      var cls = "series s" + li;
      if (l.overlay) {
        var last = null;
        pts.forEach(function (p, i) {
          var v = p.values[l.index];
          if (v == null) { last = null; return; }
          var cx = x(i) + step / 2, cy = y(v);
          if (last) svg.appendChild(svgEl("line", { x1: last[0], y1: last[1], x2: cx, y2: cy, "class": "stroke overlay" }));
          svg.appendChild(svgEl("circle", { cx: cx, cy: cy, r: 3, "class": "overlay-dot", "data-i": i }));
          last = [cx, cy];
        });
      } else if (kind === "bars") {
        var bw = Math.max(1, step / barLines - 2);
        pts.forEach(function (p, i) {
          var v = p.values[l.index] || 0;
          svg.appendChild(svgEl("rect", { x: x(i) + 1 + li * (bw + 1), y: y(v), width: bw, height: Math.max(0, M.top + ih - y(v)),
            "class": cls + (p.partial ? " partial" : ""), "data-i": i }));
        });
      } else {
        var prev = null;
        pts.forEach(function (p, i) {
          var v = p.values[l.index];
          if (v == null) { prev = null; return; }
          var cx = x(i) + step / 2, cy = y(v);
          if (prev) svg.appendChild(svgEl("line", { x1: prev[0], y1: prev[1], x2: cx, y2: cy, "class": cls + " stroke" + (p.partial || prev[2] ? " partial" : "") }));
          svg.appendChild(svgEl("circle", { cx: cx, cy: cy, r: 3, "class": cls + " dot" + (p.partial ? " partial" : "") }));
          prev = [cx, cy, p.partial];
        });
      }
    });
    // The partial buckets' label.
    pts.forEach(function (p, i) {
      if (!p.partial || step < 14) return;
      var t = svgEl("text", { x: x(i) + step / 2, y: M.top + 9, "text-anchor": "middle", "class": "partial-label" });
      t.textContent = "partial";
      svg.appendChild(t);
    });
    var cursor = svgEl("rect", { x: 0, y: M.top, width: step, height: ih, "class": "cursor", visibility: "hidden" });
    svg.insertBefore(cursor, svg.firstChild);
    el.appendChild(svg);
    if (!any) {
      var empty = document.createElement("p");
      empty.className = "muted chart-empty";
      empty.textContent = "No data in this timeframe.";
      el.appendChild(empty);
    }
    var tip = document.createElement("div");
    tip.className = "chart-tip";
    tip.id = id + "-tip";
    tip.setAttribute("role", "status");
    tip.hidden = true;
    el.appendChild(tip);
    var legend = document.createElement("p");
    legend.className = "chart-legend muted";
    if (lines.length > 1 || spec.good != null || spec.poor != null) lines.forEach(function (l, li) {
      var key = document.createElement("span");
      key.className = "key " + (l.overlay ? "overlay" : "s" + li);
      key.textContent = l.label;
      legend.appendChild(key);
    });
    [["good", "Good ≤ ", spec.good], ["poor", "Poor > ", spec.poor]].forEach(function (g) {
      if (g[2] == null) return;
      var key = document.createElement("span");
      key.className = "key " + g[0];
      key.textContent = g[1] + num.format(g[2]) + (spec.unit ? " " + spec.unit : "");
      legend.appendChild(key);
    });
    var partial = pts.filter(function (p) { return p.partial; }).length;
    if (partial) {
      var note = document.createElement("span");
      note.className = "partial-note";
      note.textContent = (kind === "bars" ? "Hatched" : "Dashed") + " " + noun + "s are partial: the range covers only part of them" +
        (pts[pts.length - 1].partial ? " (the last is still in progress)" : "") + ".";
      legend.appendChild(note);
    }
    if (legend.childNodes.length) el.appendChild(legend);

    // An overlay's name in the tooltip says which earlier bucket it is.
    function lineLabel(l, p) {
      return l.overlay && p.prev ? l.label + " (" + bucketLabel(s.bucket, p.prev) + ")" : l.label;
    }

    function show(i, fromKey) {
      el.siActive = i;
      if (i < 0 || i >= n) { tip.hidden = true; cursor.setAttribute("visibility", "hidden"); return; }
      var p = pts[i];
      cursor.setAttribute("x", x(i));
      cursor.setAttribute("visibility", "visible");
      tip.textContent = "";
      var h = document.createElement("strong");
      h.textContent = bucketLabel(s.bucket, p) + (p.partial ? " (partial)" : "");
      tip.appendChild(h);
      lines.forEach(function (l) {
        var row = document.createElement("span");
        row.textContent = lineLabel(l, p) + ": " + value(p.values[l.index], spec.unit);
        tip.appendChild(row);
      });
      tip.hidden = false;
      var left = Math.min(Math.max(0, x(i) + step / 2 - tip.offsetWidth / 2), W - tip.offsetWidth);
      tip.style.left = left + "px";
      if (fromKey) svg.setAttribute("aria-describedby", tip.id);
    }
    svg.addEventListener("mousemove", function (e) {
      var r = svg.getBoundingClientRect();
      show(Math.floor((e.clientX - r.left - M.left) / step), false);
    });
    svg.addEventListener("mouseleave", function () { if (document.activeElement !== svg) show(-1); });
    svg.addEventListener("focus", function () { show(el.siActive >= 0 ? el.siActive : n - 1, true); });
    svg.addEventListener("blur", function () { show(-1); });
    svg.addEventListener("keydown", function (e) {
      var i = el.siActive < 0 ? n - 1 : el.siActive;
      if (e.key === "ArrowLeft") i = Math.max(0, i - 1);
      else if (e.key === "ArrowRight") i = Math.min(n - 1, i + 1);
      else if (e.key === "Home") i = 0;
      else if (e.key === "End") i = n - 1;
      else if (e.key === "Escape") { show(-1); return; }
      else return;
      e.preventDefault();
      show(i, true);
    });
    if (active >= 0 && active < n && document.activeElement === document.body) show(active);

    // The same figures as a table.
    var details = document.createElement("details");
    details.className = "chart-table";
    var summary = document.createElement("summary");
    summary.textContent = "Show as table";
    details.appendChild(summary);
    var table = document.createElement("table");
    table.className = "list compact";
    var cap = document.createElement("caption");
    cap.className = "sr-only";
    cap.textContent = title;
    table.appendChild(cap);
    var head = document.createElement("tr");
    [noun.charAt(0).toUpperCase() + noun.slice(1)].concat(lines.map(function (l) { return l.label; })).forEach(function (t) {
      var th = document.createElement("th"); th.scope = "col"; th.textContent = t; head.appendChild(th);
    });
    var thead = document.createElement("thead"); thead.appendChild(head); table.appendChild(thead);
    var body = document.createElement("tbody");
    pts.forEach(function (p) {
      var tr = document.createElement("tr");
      var th = document.createElement("th"); th.scope = "row";
      th.textContent = bucketLabel(s.bucket, p) + (p.partial ? " (partial)" : "");
      tr.appendChild(th);
      lines.forEach(function (l) {
        var td = document.createElement("td");
        td.textContent = value(p.values[l.index], spec.unit) + (l.overlay && p.prev ? " (" + bucketLabel(s.bucket, p.prev) + ")" : "");
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.appendChild(body);
    var wrap = document.createElement("div"); wrap.className = "table-scroll"; wrap.tabIndex = 0; wrap.appendChild(table);
    details.appendChild(wrap);
    if (el.siTableOpen) details.open = true;
    details.addEventListener("toggle", function () { el.siTableOpen = details.open; });
    el.appendChild(details);
  }

  window.siCharts = { draw: draw };
})();
