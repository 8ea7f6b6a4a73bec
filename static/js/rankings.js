// Live ranking: refreshes the table while the tab is visible, asks with the last ETag so an unchanged
// ranking costs a bare 304, and briefly highlights rows whose rank changed. A file, not inline code:
// the CSP forbids inline scripts, and htmx's eval-based trigger filters are switched off (allowEval).
(function () {
  "use strict";
  var REGION_ID = "ranking-region";
  var lastPoll = Date.now();
  var previous = null; // nomination id -> rank, captured just before a refresh is swapped in

  function region() { return document.getElementById(REGION_ID); }

  function isLive(el) {
    // A final round renders no hx-trigger: nothing to poll.
    return !!el && el.hasAttribute("hx-trigger") && el.hasAttribute("data-poll-seconds");
  }

  function pollMs(el) {
    var seconds = parseInt(el.getAttribute("data-poll-seconds"), 10);
    return (seconds > 0 ? seconds : 5) * 1000;
  }

  function poll() {
    var el = region();
    if (!isLive(el) || !window.htmx) { return; }
    lastPoll = Date.now();
    window.htmx.trigger(el, "kepu:poll");
  }

  function tick() {
    var el = region();
    if (!isLive(el) || document.visibilityState !== "visible") { return; }
    if (Date.now() - lastPoll >= pollMs(el)) { poll(); }
  }

  function ranks(el) {
    var out = {};
    el.querySelectorAll("tr[data-nomination-id][data-rank]").forEach(function (tr) {
      out[tr.getAttribute("data-nomination-id")] = parseInt(tr.getAttribute("data-rank"), 10);
    });
    return out;
  }

  function fromRegion(detail) {
    var cfg = detail && detail.requestConfig;
    return !!(cfg && cfg.elt && cfg.elt.id === REGION_ID);
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function markChecked(changed) {
    var out = document.getElementById("ranking-checked");
    if (!out) { return; }
    var d = new Date();
    var at = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    out.textContent = (changed ? "已更新 " : "无变化 ") + at;
    out.setAttribute("data-state", changed ? "updated" : "unchanged");
  }

  document.addEventListener("htmx:configRequest", function (evt) {
    var el = evt.detail.elt;
    if (el && el.id === REGION_ID && el.getAttribute("data-etag")) {
      // An explicit validator makes the browser pass the 304 through instead of replaying its cache.
      evt.detail.headers["If-None-Match"] = el.getAttribute("data-etag");
    }
  });

  document.addEventListener("htmx:beforeSwap", function (evt) {
    if (!fromRegion(evt.detail)) { previous = null; return; }
    if (evt.detail.xhr.status === 304) {
      evt.detail.shouldSwap = false;
      evt.detail.isError = false;
      markChecked(false);
      return;
    }
    var el = region();
    previous = el ? ranks(el) : null;
  });

  document.addEventListener("htmx:afterSettle", function () {
    var el = region();
    if (!el || previous === null) { return; }
    var before = previous;
    previous = null;
    el.querySelectorAll("tr[data-nomination-id][data-rank]").forEach(function (tr) {
      var old = before[tr.getAttribute("data-nomination-id")];
      var now = parseInt(tr.getAttribute("data-rank"), 10);
      if (old === undefined || old === now) { return; }
      tr.classList.add(now < old ? "rank-up" : "rank-down");
      window.setTimeout(function () { tr.classList.remove("rank-up", "rank-down"); }, 4000);
    });
    markChecked(true);
  });

  document.addEventListener("visibilitychange", function () {
    var el = region();
    // Back on the tab after a pause: refresh now rather than at the next tick.
    if (document.visibilityState === "visible" && isLive(el) && Date.now() - lastPoll >= pollMs(el)) { poll(); }
  });

  window.setInterval(tick, 1000);
})();
