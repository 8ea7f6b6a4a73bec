// Score panel and photo viewer of the nomination page. Loaded as a file (strict CSP, no inline code).
// The form works without this file; here it gets a live total, Enter that moves to the next field
// instead of submitting, visible save states, and a calm retry when the network drops.
(function () {
  "use strict";

  var RETRY_DELAYS_MS = [2000, 5000, 10000, 30000];
  var edits = 0;          // input events since the page (or the panel) was loaded
  var sentEdits = 0;      // `edits` when the last save request left
  var retryIndex = 0;
  var retryTimer = null;
  var leaving = false;    // an HX-Redirect ("保存并评下一个") is taking us away

  function panelForm() { return document.getElementById("score-form"); }

  function isPanelRequest(evt) {
    var elt = evt.detail && evt.detail.elt;
    return !!elt && elt.id === "score-form";
  }

  function scoreInputs(form) {
    return Array.prototype.slice.call(form.querySelectorAll('input[name^="score-"]'));
  }

  function formatNumber(n) {
    return String(Math.round(n * 100) / 100);
  }

  function updateTotal() {
    var form = panelForm();
    if (!form) return;
    var total = 0;
    var filled = 0;
    scoreInputs(form).forEach(function (input) {
      if (input.validity && input.validity.badInput) { filled++; return; }
      var raw = input.value.trim();
      if (raw === "") return;
      filled++;
      var value = Number(raw);
      // Only what the server would accept counts: a total with an out-of-range value would mislead.
      if (isFinite(value) && value >= 0 && value <= Number(input.dataset.max)) total += value;
    });
    var out = document.getElementById("sheet-total");
    if (out) out.textContent = formatNumber(total);
    // The phone jump bar above the panel repeats the total.
    document.querySelectorAll(".total-mirror").forEach(function (el) { el.textContent = formatNumber(total); });
    var count = document.getElementById("sheet-filled");
    if (count) count.textContent = String(filled);
  }

  // The limit is the one the server's form enforces, rendered as the textarea's maxlength.
  function updateCommentCount() {
    var area = document.getElementById("sheet-comment");
    var counter = document.getElementById("comment-count");
    if (!area || !counter) return;
    var limit = area.getAttribute("maxlength") || counter.dataset.max || "";
    counter.textContent = area.value.replace(/\r\n/g, "\n").length + (limit ? "/" + limit : "");
  }

  // The server's messages land in the error spans; mirror them for assistive technology.
  function markInvalid() {
    var form = panelForm();
    if (!form) return;
    form.querySelectorAll("input[name^='score-'], textarea[name='comment']").forEach(function (field) {
      var key = field.name === "comment" ? "comment" : field.name.slice("score-".length);
      var error = document.getElementById("err-" + key);
      if (error && error.textContent.trim()) field.setAttribute("aria-invalid", "true");
      else field.removeAttribute("aria-invalid");
    });
  }

  // Show the save time in the reader's own clock (the server may run in another time zone).
  function localizeTimes(root) {
    (root || document).querySelectorAll("#sheet-status time[datetime]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        el.textContent = when.toLocaleTimeString("zh-CN", { hour12: false });
      }
    });
  }

  function showNetworkMessage(message) {
    var el = document.getElementById("sheet-net");
    if (!el) return;
    el.textContent = message || "";
    el.hidden = !message;
  }

  function saveNow() {
    var form = panelForm();
    if (form && window.htmx) window.htmx.trigger(form, "change");
  }

  function scheduleRetry() {
    clearTimeout(retryTimer);
    var delay = RETRY_DELAYS_MS[Math.min(retryIndex, RETRY_DELAYS_MS.length - 1)];
    retryIndex++;
    retryTimer = setTimeout(function () { retryTimer = null; saveNow(); }, delay);
  }

  document.addEventListener("input", function (evt) {
    var form = panelForm();
    if (!form || !form.contains(evt.target)) return;
    edits++;
    form.classList.add("is-dirty");
    updateTotal();
    updateCommentCount();
  });

  // Enter never submits by accident: it moves to the next field (leaving a field saves it at once).
  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Enter" || evt.isComposing) return;
    var target = evt.target;
    var form = panelForm();
    if (!form || target.tagName !== "INPUT" || !form.contains(target)) return;
    evt.preventDefault();
    var fields = scoreInputs(form);
    var comment = document.getElementById("sheet-comment");
    if (comment) fields.push(comment);
    var next = fields[fields.indexOf(target) + 1];
    if (next) next.focus();
    else target.blur();
  });

  // A wheel turned over a focused number field would silently change the score.
  document.addEventListener("wheel", function (evt) {
    var target = evt.target;
    if (target && target.type === "number" && target === document.activeElement && target.closest("#score-form")) {
      evt.preventDefault();
    }
  }, { passive: false });

  document.addEventListener("htmx:confirm", function (evt) {
    var trigger = evt.detail.triggeringEvent;
    if (!isPanelRequest(evt) || !trigger || trigger.type !== "submit") return;
    if (!trigger.submitter || trigger.submitter.value !== "submit") return;
    // A submit queued behind an autosave (hx-sync "queue last") passes through htmx:confirm again
    // when it is replayed: ask once per click.
    if (trigger.kepuConfirmed) return;
    evt.preventDefault();
    if (window.confirm("提交后将不能再修改（如需修改须由管理员退回）。确定提交吗？")) {
      trigger.kepuConfirmed = true;
      evt.detail.issueRequest(true);
    }
  });

  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (isPanelRequest(evt)) sentEdits = edits;
  });

  document.addEventListener("htmx:beforeOnLoad", function (evt) {
    var xhr = evt.detail.xhr;
    if (isPanelRequest(evt) && xhr && xhr.getResponseHeader("HX-Redirect")) leaving = true;
  });

  // A session that expired answers with the sign-in page (after a redirect): never swap that in.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr;
    if (!isPanelRequest(evt) || !xhr || !xhr.responseURL) return;
    if (new URL(xhr.responseURL).pathname === "/login") {
      evt.detail.shouldSwap = false;
      showNetworkMessage("保存失败：登录已过期。请在新窗口重新登录后回到本页继续；您输入的内容仍在页面上。");
    }
  });

  document.addEventListener("htmx:afterRequest", function (evt) {
    if (!isPanelRequest(evt)) return;
    var xhr = evt.detail.xhr;
    var status = xhr ? xhr.status : 0;
    if (status === 200 || status === 409 || status === 422) {
      retryIndex = 0;
      clearTimeout(retryTimer);
      retryTimer = null;
      if (!xhr.responseURL || new URL(xhr.responseURL).pathname !== "/login") showNetworkMessage("");
    }
    if (status === 409) {
      // The whole panel was replaced by what is stored: nothing typed here is pending any more.
      edits = 0;
      sentEdits = 0;
    }
    var form = panelForm();
    if (form && status === 200 && edits === sentEdits) form.classList.remove("is-dirty");
  });

  document.addEventListener("htmx:sendError", function (evt) {
    if (!isPanelRequest(evt)) return;
    showNetworkMessage("保存失败：网络连接中断。您输入的内容仍在页面上，恢复连接后会自动重试。");
    scheduleRetry();
  });

  document.addEventListener("htmx:responseError", function (evt) {
    if (!isPanelRequest(evt)) return;
    var status = evt.detail.xhr.status;
    var message;
    if (status === 400) message = "保存失败：页面已过期。请先复制您的评审意见，再刷新页面。";
    else if (status === 403) message = "保存失败：您已无权为此推荐对象评分（可能已回避或不再分配给您）。";
    else if (status === 404) message = "保存失败：找不到该推荐对象。";
    else message = "保存失败：服务器暂时无法保存（错误 " + status + "）。您输入的内容仍在页面上，稍后会自动重试。";
    showNetworkMessage(message);
    if (status >= 500 || status === 429) scheduleRetry();
  });

  // Idempotent, and cheap enough to run after any swap on the page.
  document.addEventListener("htmx:afterSettle", function () {
    if (!panelForm()) return;
    markInvalid();
    updateTotal();
    updateCommentCount();
    localizeTimes();
  });

  window.addEventListener("online", function () {
    if (retryTimer) {
      clearTimeout(retryTimer);
      retryTimer = null;
      saveNow();
    }
  });

  window.addEventListener("beforeunload", function (evt) {
    var form = panelForm();
    if (leaving || !form || !form.classList.contains("is-dirty")) return;
    // Typed but not yet sent, or the last save did not succeed.
    evt.preventDefault();
    evt.returnValue = "";
  });

  // --- photo viewer: a plain link opens the full image; with JS it opens in a dialog ----------------
  function photoLinks() {
    return Array.prototype.slice.call(document.querySelectorAll(".gallery a.photo-link"));
  }

  function showPhoto(index) {
    var dialog = document.getElementById("photo-viewer");
    var links = photoLinks();
    if (!dialog || !links.length) return;
    var i = (index + links.length) % links.length;
    var link = links[i];
    dialog.dataset.index = String(i);
    dialog.querySelector("img").src = link.href;
    dialog.querySelector("img").alt = link.querySelector("img") ? link.querySelector("img").alt : "";
    dialog.querySelector("figcaption").textContent = link.dataset.caption || "";
    dialog.querySelector(".viewer-open").href = link.href;
    if (!dialog.open) dialog.showModal();
  }

  document.addEventListener("click", function (evt) {
    var link = evt.target.closest && evt.target.closest(".gallery a.photo-link");
    if (link) {
      if (evt.button !== 0 || evt.ctrlKey || evt.metaKey || evt.shiftKey || evt.altKey) return;
      if (!document.getElementById("photo-viewer") || typeof HTMLDialogElement === "undefined") return;
      evt.preventDefault();
      showPhoto(photoLinks().indexOf(link));
      return;
    }
    var dialog = document.getElementById("photo-viewer");
    if (!dialog || !dialog.open) return;
    var step = evt.target.closest && evt.target.closest("[data-step]");
    if (step) { showPhoto(Number(dialog.dataset.index) + Number(step.dataset.step)); return; }
    if (evt.target.closest("[data-close]") || evt.target === dialog) dialog.close();
  });

  document.addEventListener("keydown", function (evt) {
    var dialog = document.getElementById("photo-viewer");
    if (!dialog || !dialog.open) return;
    if (evt.key === "ArrowRight") showPhoto(Number(dialog.dataset.index) + 1);
    else if (evt.key === "ArrowLeft") showPhoto(Number(dialog.dataset.index) - 1);
  });

  document.addEventListener("DOMContentLoaded", function () {
    updateTotal();
    updateCommentCount();
    localizeTimes();
  });
})();
