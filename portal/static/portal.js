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
// Notices: offer Web Push where the browser has it and the server has a VAPID key.
(function () {
  var box = document.querySelector("[data-vapid-key]");
  if (!box || !("serviceWorker" in navigator) || !("PushManager" in window)) return;
  var button = box.querySelector("button");
  box.hidden = false;
  button.addEventListener("click", function () {
    var raw = atob(box.getAttribute("data-vapid-key").replace(/-/g, "+").replace(/_/g, "/"));
    var key = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) key[i] = raw.charCodeAt(i);
    navigator.serviceWorker.register("/my/sw.js", {scope: "/my/"})
      .then(function (reg) { return reg.pushManager.subscribe({userVisibleOnly: true, applicationServerKey: key}); })
      .then(function (sub) {
        var j = sub.toJSON(), f = new URLSearchParams();
        f.set("csrf", box.getAttribute("data-csrf")); f.set("endpoint", j.endpoint);
        f.set("p256dh", j.keys.p256dh); f.set("auth", j.keys.auth);
        return fetch("/my/push/subscribe", {method: "POST", body: f, credentials: "same-origin"});
      })
      .then(function (r) { box.querySelector("[role=status]").textContent = r.ok ? box.getAttribute("data-ok") : box.getAttribute("data-fail"); })
      .catch(function () { box.querySelector("[role=status]").textContent = box.getAttribute("data-fail"); });
  });
})();
