// Reloads the queue every few seconds while nobody is typing. The console
// works without it.
(function () {
  var s = document.body.getAttribute("data-refresh");
  if (!s) return;
  setInterval(function () {
    var a = document.activeElement;
    if (a && (a.tagName === "INPUT" || a.tagName === "TEXTAREA")) return;
    location.reload();
  }, Number(s) * 1000);
})();
