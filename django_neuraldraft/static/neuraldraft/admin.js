/* Live progress for the image key admin: poll the JSON status view while a key is generating.
 *
 * Badges and thumbnails are swapped in from the JSON. When a generation ends on a key's
 * change page, the parts of the page that depend on it (buttons, images on show and to
 * review, version history) are fetched again from the server and swapped in, so they read
 * exactly as after a reload; the form, and whatever the editor typed in it, stays.
 */
(function () {
  "use strict";
  var INTERVAL_MS = 1500;
  var RETRY_MS = INTERVAL_MS * 4;
  var timer = null;

  function schedule(delay) {
    if (timer === null) {
      timer = window.setTimeout(function () { timer = null; poll(); }, delay);
    }
  }

  function badges() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-nd-status]"));
  }

  function inFlight() {
    return badges().some(function (badge) { return badge.dataset.ndState === "generating"; });
  }

  function showImage(entry) {
    document.querySelectorAll('[data-nd-image="' + entry.id + '"]').forEach(function (box) {
      var img = box.querySelector("img");
      if (!img) {
        img = document.createElement("img");
        img.alt = "";
        box.textContent = "";
        box.appendChild(img);
      }
      if (img.getAttribute("src") !== entry.image) { img.src = entry.image; }
    });
  }

  function refreshRegions() {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("the change page answered " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-nd-region]").forEach(function (region) {
          var name = region.dataset.ndRegion;
          var replacement = fresh.querySelector('[data-nd-region="' + name + '"]');
          if (replacement) {
            region.replaceWith(document.importNode(replacement, true));
          } else {
            region.replaceChildren();
          }
        });
        if (inFlight()) { schedule(INTERVAL_MS); }
      })
      .catch(function () { /* The badge and image are current; a reload shows the rest. */ });
  }

  function update(entry) {
    var ended = false;
    document.querySelectorAll('[data-nd-status="' + entry.id + '"]').forEach(function (badge) {
      ended = ended || (badge.dataset.ndState === "generating" && entry.state !== "generating");
      badge.outerHTML = entry.badge;
    });
    if (entry.image) { showImage(entry); }
    return ended;
  }

  function poll() {
    var all = badges();
    if (!all.length) { return; }
    var ids = all.map(function (badge) { return "id=" + encodeURIComponent(badge.dataset.ndStatus); });
    fetch(all[0].dataset.ndUrl + "?" + ids.join("&"), {
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    }).then(function (response) {
      if (response.status >= 400 && response.status < 500) {
        return null;  // Logged out or no longer allowed: asking again cannot help.
      }
      if (!response.ok) { throw new Error("status view answered " + response.status); }
      return response.json();
    }).then(function (data) {
      if (!data) { return; }
      var ended = data.keys.map(update).some(Boolean);
      if (ended && document.querySelector("[data-nd-region]")) { refreshRegions(); }
      if (data.in_flight) { schedule(INTERVAL_MS); }
    }).catch(function () {
      schedule(RETRY_MS);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (inFlight()) { schedule(INTERVAL_MS); }
  });
})();
