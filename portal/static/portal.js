// Progressive enhancement only: everything works without it. Counter assistance shows its
// expiry warning two minutes before the time-limited view ends (WCAG 2.2.1).
(function () {
  var w = document.querySelector("[data-counter-ends]");
  if (!w) return;
  var ends = Date.parse(w.getAttribute("data-counter-ends"));
  function tick() {
    var left = ends - Date.now();
    if (left <= 120000) { w.hidden = false; }
    if (left > 0) { setTimeout(tick, 5000); } else { location.reload(); }
  }
  tick();
})();
