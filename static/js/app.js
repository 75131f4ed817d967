// Small progressive enhancements for server-rendered pages: copy buttons and confirmations.
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
