// kepu-review page behaviour. Loaded as a file (no inline scripts) so a strict CSP holds.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    // Flash messages fade after a while; errors stay until the next action.
    document.querySelectorAll(".flash-success, .flash-info").forEach(function (el) {
      setTimeout(function () { el.classList.add("hidden"); }, 6000);
    });
  });
})();
