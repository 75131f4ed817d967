// Small progressive enhancements for every server-rendered page: copy buttons, reveal buttons
// for secrets (`data-reveal`), confirmations, selects that submit their form on change
// (`data-autosubmit`; from the keyboard, on Enter), switches that submit when toggled, and
// the custom date range's checks, and the "Still computing" page's reload after the server's
// Retry-After (which the person may stop). Loaded by base.html; no inline
// handlers anywhere, so the Content-Security-Policy needs no 'unsafe-inline'.
document.addEventListener("click", function (e) {
  var button = e.target.closest("[data-copy]");
  if (!button) return;
  var source = document.querySelector(button.getAttribute("data-copy"));
  if (!source) return;
  var text = "value" in source && source.value !== undefined ? source.value : source.textContent;
  var done = function () { var old = button.textContent; button.textContent = "Copied"; setTimeout(function () { button.textContent = old; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () { fallback(source); done(); });
  } else { fallback(source); done(); }
});
function fallback(source) {
  if (source.select) { source.select(); } else { var r = document.createRange(); r.selectNodeContents(source); var s = getSelection(); s.removeAllRanges(); s.addRange(r); }
  try { document.execCommand("copy"); } catch (_) { /* selection stays for manual copy */ }
}
document.addEventListener("submit", function (e) {
  var message = e.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) e.preventDefault();
});
// A select that submits on change submits at once when picked with the mouse (or a touch
// screen's picker); from the keyboard, arrow keys only move the choice (Chromium fires
// `change` on each one) and Enter submits it, so reading the options never reloads the page.
var keyedSelect = null;
document.addEventListener("keydown", function (e) {
  var select = e.target;
  if (!select.matches || !select.matches("select[data-autosubmit]")) return;
  if (e.key === "Enter" && select.form) { e.preventDefault(); keyedSelect = null; select.form.submit(); return; }
  if (e.key !== "Tab") keyedSelect = select;
});
document.addEventListener("change", function (e) {
  if (!e.target.form) return;
  // A switch (the chart's comparison) is one deliberate press, by mouse or by Space.
  if (e.target.matches("input[type=checkbox][data-autosubmit]")) { e.target.form.submit(); return; }
  if (!e.target.matches("select[data-autosubmit]")) return;
  if (keyedSelect === e.target) return;
  e.target.form.submit();
});
// A timeframe picked in place of a custom range ends the range: the form's hidden `from`/`to`
// (`data-range`) stay out of the URL unless the "Custom" option is still the chosen one.
document.addEventListener("submit", function (e) {
  var select = e.target.querySelector && e.target.querySelector("select[name=timeframe]");
  if (!select) return;
  var custom = select.selectedOptions[0] && select.selectedOptions[0].hasAttribute("data-custom");
  e.target.querySelectorAll("input[data-range]").forEach(function (input) { input.disabled = !custom; });
});
// The custom range (`#range-form` on the dashboard and the drill-downs): both dates, the start
// not after the end, nothing in the future or before 2000; said on the page before anything is
// sent (the server checks the same and answers 400 INVALID_DATE_RANGE otherwise).
document.addEventListener("submit", function (e) {
  var form = e.target;
  if (form.id !== "range-form") return;
  var from = form.elements.from, to = form.elements.to, error = document.getElementById("range-error");
  var problem = null, field = null;
  if (!from.value) { problem = "Choose a start date."; field = from; }
  else if (!to.value) { problem = "Choose an end date."; field = to; }
  else if (from.value > to.value) { problem = "The start date is after the end date."; field = from; }
  else if (from.max && from.value > from.max) { problem = "The range starts in the future."; field = from; }
  else if (from.min && from.value < from.min) { problem = "The range starts before 2000."; field = from; }
  [from, to].forEach(function (f) { f.removeAttribute("aria-invalid"); });
  if (!problem) { error.hidden = true; return; }
  e.preventDefault();
  error.textContent = problem;
  error.hidden = false;
  field.setAttribute("aria-invalid", "true");
  field.setAttribute("aria-describedby", "range-error");
  field.focus();
});
document.addEventListener("mousedown", function () { keyedSelect = null; });
document.addEventListener("click", function (e) {
  var button = e.target.closest("[data-reveal]");
  if (!button) return;
  var input = document.querySelector(button.getAttribute("data-reveal"));
  if (!input) return;
  var shown = input.type === "password";
  input.type = shown ? "text" : "password";
  button.textContent = shown ? "Hide" : "Reveal";
  button.setAttribute("aria-pressed", String(shown));
});

// A view still being computed (templates/error.html): reload after `data-reload-after` seconds,
// the server's Retry-After, by when the computation has usually landed in the cache. Not a
// <meta http-equiv="refresh">: a person must be able to stop a timed reload (WCAG 2.2.1).
(function () {
  var box = document.getElementById("still-computing");
  var row = document.getElementById("reload-stop-row");
  if (!box || !row) return;
  var timer = setTimeout(function () { location.reload(); }, (Number(box.getAttribute("data-reload-after")) || 5) * 1000);
  row.hidden = false;
  document.getElementById("reload-stop").addEventListener("click", function () {
    clearTimeout(timer);
    row.hidden = true;
    document.getElementById("reload-note").textContent = "Reloading stopped.";
  });
})();
