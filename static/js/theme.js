// Colour theme: follows the system (prefers-color-scheme) unless the person chose light or dark
// with the toggle in the header, which is remembered in localStorage. Loaded in <head> without
// `defer` (a tiny file) so the page never flashes the other theme; the toggle is wired once the
// page has loaded.
(function () {
  "use strict";
  var KEY = "si-theme";
  var root = document.documentElement;
  function stored() { try { return localStorage.getItem(KEY); } catch (_) { return null; } }
  function apply(choice) {
    if (choice === "light" || choice === "dark") root.setAttribute("data-theme", choice);
    else root.removeAttribute("data-theme");
  }
  function effective() {
    var c = stored();
    if (c === "light" || c === "dark") return c;
    return window.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  apply(stored());
  function label(button) {
    var dark = effective() === "dark";
    button.setAttribute("aria-pressed", String(dark));
    button.textContent = dark ? "Dark mode: on" : "Dark mode: off";
    button.title = stored() ? "Chosen here; the system setting is ignored" : "Following the system setting";
  }
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    button.hidden = false;
    label(button);
    button.addEventListener("click", function () {
      var next = effective() === "dark" ? "light" : "dark";
      try { localStorage.setItem(KEY, next); } catch (_) { /* private mode: this page only */ }
      apply(next);
      label(button);
    });
    if (window.matchMedia) matchMedia("(prefers-color-scheme: dark)").addEventListener("change", function () { label(button); });
  });
})();
