// The portal's service worker: shows a pushed notice and opens its page when tapped.
self.addEventListener("push", function (event) {
  var n = event.data ? event.data.json() : {title: "", body: "", url: "/my/"};
  event.waitUntil(self.registration.showNotification(n.title, {body: n.body, data: n.url, lang: "ja"}));
});
self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  event.waitUntil(clients.openWindow(event.notification.data || "/my/"));
});
