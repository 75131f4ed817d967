// Small progressive enhancements for every server-rendered page: copy buttons, reveal buttons
// for secrets (`data-reveal`), confirmations and selects that submit their form on change
// (`data-autosubmit`; from the keyboard, on Enter). Loaded by base.html; no inline
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
  if (!e.target.matches("select[data-autosubmit]") || !e.target.form) return;
  if (keyedSelect === e.target) return;
  e.target.form.submit();
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
