/* Live progress for the image key admin: poll the JSON status view while a key is generating. */
(function () {
  "use strict";
  var INTERVAL_MS = 1500;

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

  function update(entry) {
    document.querySelectorAll('[data-nd-status="' + entry.id + '"]').forEach(function (badge) {
      badge.outerHTML = entry.badge;
    });
    if (entry.image) { showImage(entry); }
    if (entry.state !== "generating") {
      document.querySelectorAll('[data-nd-while-generating="' + entry.id + '"]').forEach(function (el) {
        el.style.display = "none";
      });
    }
  }

  function poll() {
    var all = badges();
    if (!all.length) { return; }
    var ids = all.map(function (badge) { return "id=" + encodeURIComponent(badge.dataset.ndStatus); });
    fetch(all[0].dataset.ndUrl + "?" + ids.join("&"), {
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    }).then(function (response) {
      if (!response.ok) { throw new Error("status view answered " + response.status); }
      return response.json();
    }).then(function (data) {
      data.keys.forEach(update);
      if (data.in_flight) { window.setTimeout(poll, INTERVAL_MS); }
    }).catch(function () {
      window.setTimeout(poll, INTERVAL_MS * 4);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (inFlight()) { window.setTimeout(poll, INTERVAL_MS); }
  });
})();
