/* refbus caseworker UI: says so when the live updates stop (the event
   stream of /ui/events is down: server stopped, network cut), and when they
   come back, takes the banner away and brings the page up to date. The
   banner's words are the page's (a <template> in the user's language). */
(function () {
  "use strict";
  var leaving = false;
  // A page being left drops its stream too: that is no news.
  addEventListener("pagehide", function () { leaving = true; });
  addEventListener("pageshow", function () { leaving = false; });
  document.addEventListener("htmx:sseError", function () {
    var banner = document.getElementById("live-lost"), text = document.getElementById("live-lost-text");
    if (leaving || !banner || !text || banner.childElementCount) return;
    // Filled, not unhidden: a live region announces what is put in it.
    banner.replaceChildren(text.content.cloneNode(true));
  });
  document.addEventListener("htmx:sseOpen", function () {
    var banner = document.getElementById("live-lost");
    if (!banner || !banner.childElementCount) return;
    banner.replaceChildren();
    // Changes made while the stream was down were never announced.
    document.querySelectorAll('[hx-trigger~="sse:changed"]').forEach(function (el) {
      htmx.trigger(el, "sse:changed");
    });
  });
})();
