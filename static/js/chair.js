// Deliberation and downloads pages. Loaded as a file (strict CSP, no inline scripts).
(function () {
  "use strict";
  // After htmx swaps a row back with a validation error, put the cursor where the fix goes.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    var scope = target && target.isConnected ? target : document;
    var invalid = scope.querySelector("[aria-invalid=true]");
    if (invalid) { invalid.focus(); }
  });
})();
