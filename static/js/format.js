// Numbers and names for people, on every page: figures in the reader's locale (`data-num`,
// `td.num`), dates as local time with a relative phrase (`<time datetime>`; the exact local
// time in the title), URLs without the site's origin (`data-url`, full URL in the title),
// countries by name with their flag (`data-country`), device types capitalised. The server
// renders the plain values; this only changes how they read. `siFormat` is shared with the
// pages' own scripts for what they redraw.
(function () {
  "use strict";
  var lang = navigator.language || "en";
  var nf = new Intl.NumberFormat(lang);
  var rel = typeof Intl.RelativeTimeFormat === "function" ? new Intl.RelativeTimeFormat(lang, { numeric: "auto" }) : null;
  var regions = typeof Intl.DisplayNames === "function" ? new Intl.DisplayNames([lang], { type: "region" }) : null;

  function number(text) {
    var t = String(text).trim();
    if (!/^-?\d+(\.\d+)?$/.test(t)) return t;
    return nf.format(Number(t));
  }

  function relative(ms) {
    if (!rel) return "";
    var diff = (ms - Date.now()) / 1000, abs = Math.abs(diff);
    var units = [["second", 60], ["minute", 3600], ["hour", 86400], ["day", 86400 * 30], ["month", 86400 * 365], ["year", Infinity]];
    var div = { second: 1, minute: 60, hour: 3600, day: 86400, month: 86400 * 30, year: 86400 * 365 };
    for (var i = 0; i < units.length; i++) {
      if (abs < units[i][1]) return rel.format(Math.round(diff / div[units[i][0]]), units[i][0]);
    }
    return "";
  }

  function date(iso) {
    var ms = Date.parse(iso);
    if (isNaN(ms)) return null;
    var d = new Date(ms);
    var local = d.toLocaleString(lang, { dateStyle: "medium", timeStyle: "short" });
    var r = relative(ms);
    return { text: r ? local + " (" + r + ")" : local, title: d.toLocaleString(lang, { dateStyle: "full", timeStyle: "long" }) };
  }

  function path(url) {
    var s = String(url);
    var m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]+(.*)$/i.exec(s);
    return m ? (m[1] || "/") : s;
  }

  function flag(code) {
    return String.fromCodePoint.apply(null, code.toUpperCase().split("").map(function (c) { return 0x1f1e6 + c.charCodeAt(0) - 65; }));
  }

  function country(code) {
    var c = String(code).trim();
    if (!/^[A-Za-z]{2}$/.test(c)) return c;
    var name = c.toUpperCase();
    try { name = (regions && regions.of(name)) || name; } catch (_) { /* unknown code: keep it */ }
    return flag(c) + " " + name;
  }

  function device(v) { var s = String(v); return /^[a-z]/.test(s) ? s.charAt(0).toUpperCase() + s.slice(1) : s; }

  function apply(root) {
    (root || document).querySelectorAll("[data-num], td.num, .kpi > strong[id]").forEach(function (el) {
      if (el.children.length === 0) el.textContent = number(el.textContent);
    });
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var d = date(el.getAttribute("datetime"));
      if (d) { el.textContent = d.text; el.title = d.title; }
    });
    (root || document).querySelectorAll("[data-url]").forEach(function (el) {
      var full = el.getAttribute("data-url");
      el.textContent = path(full);
      if (path(full) !== full) el.title = full;
    });
    (root || document).querySelectorAll("[data-country]").forEach(function (el) { el.textContent = country(el.getAttribute("data-country")); });
    (root || document).querySelectorAll("[data-device]").forEach(function (el) { el.textContent = device(el.getAttribute("data-device")); });
    labels(root);
  }

  // Dashboard tables: the row links keep the raw value in the URL; only their text changes.
  function labels(root) {
    (root || document).querySelectorAll("[data-param] td.label a").forEach(function (a) {
      var param = a.closest("[data-param]").getAttribute("data-param");
      var raw = a.getAttribute("data-value") || a.textContent;
      a.setAttribute("data-value", raw);
      if (param === "country") a.textContent = country(raw);
      else if (param === "urlPrefix") { a.textContent = path(raw); }
      else if (param === "deviceType") a.textContent = device(raw);
    });
  }

  window.siFormat = { number: number, date: date, path: path, country: country, device: device, apply: apply };
  apply(document);
})();
