// Intake pages: live character counts for the 500-character boxes (the server enforces the limit).
(function () {
  "use strict";
  function update(area) {
    var counter = area.parentElement.querySelector(".char-count");
    if (!counter) { return; }
    var max = parseInt(area.getAttribute("data-maxchars"), 10);
    var n = area.value.replace(/\r\n/g, "\n").length;
    counter.textContent = n + " / " + max + " 字";
    counter.classList.toggle("over", n > max);
  }
  function bind(root) {
    root.querySelectorAll("textarea[data-maxchars]").forEach(function (area) {
      if (area.dataset.bound) { return; }
      area.dataset.bound = "1";
      area.addEventListener("input", function () { update(area); });
      update(area);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { bind(document); });
  document.addEventListener("htmx:afterSwap", function (e) { bind(e.target); });
})();
