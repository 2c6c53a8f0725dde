// Starts asciinema-player (vendored under asciinema/) on the session
// page's #player, fed by the cast URL the page names.
(function () {
  var el = document.getElementById("player");
  if (!el || !window.AsciinemaPlayer) return;
  window.AsciinemaPlayer.create(el.getAttribute("data-cast"), el, {
    autoPlay: true,
    idleTimeLimit: 2,
    fit: "width"
  });
})();
