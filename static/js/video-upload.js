// The video part of the portal form and of the intake page: a resumable upload over tus 1.0 (vendored
// tus-js-client). Without this script, or in a browser tus-js-client does not support, the part keeps its
// plain multipart form.
// Loaded as a file (no inline scripts) so the strict CSP holds.
(function () {
  "use strict";
  var MB = 1048576;
  // A dropped office connection: try again at once, then back off up to a minute, ten times in all.
  var RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000, 60000, 60000];
  var CHUNK = 5 * MB; // well below nginx's client_max_body_size; a lost chunk costs little to resend

  function mb(n) { return (n / MB).toFixed(1) + " MB"; }

  // The attribute for semantics, the class because `.row { display: flex }` would override the attribute.
  function show(el, on) {
    if (!el) { return; }
    el.hidden = !on;
    el.classList.toggle("hidden", !on);
  }

  function refusal(err) {
    // The server answers a refused chunk (not a video, too large, no longer editable) in Chinese text.
    var res = err && err.originalResponse;
    var status = res ? res.getStatus() : 0;
    var body = res ? (res.getBody() || "") : "";
    if (status >= 400 && status < 500 && body && body.length < 500) { return body; }
    return "";
  }

  function setup(box) {
    if (box.dataset.ready || !window.tus || !window.tus.isSupported) { return; }
    box.dataset.ready = "1";
    var part = box.closest(".video-part");
    var fallback = part && part.querySelector("[data-tus-fallback]");
    var input = box.querySelector("[data-tus-file]");
    var bar = box.querySelector("[data-tus-progress]");
    var status = box.querySelector("[data-tus-status]");
    var buttons = {
      start: box.querySelector("[data-tus-start]"), pause: box.querySelector("[data-tus-pause]"),
      resume: box.querySelector("[data-tus-resume]"), cancel: box.querySelector("[data-tus-cancel]")
    };
    var maxBytes = parseInt(box.dataset.maxBytes, 10);
    var nominationId = box.dataset.nominationId;
    var upload = null;

    show(box, true);
    show(fallback, false);

    function say(text, isError) {
      status.textContent = text;
      status.classList.toggle("field-error", !!isError);
    }
    function state(name) {
      // idle: a file may be chosen; running: pause/cancel; paused: resume/cancel
      show(buttons.start, name === "idle");
      show(buttons.pause, name === "running");
      show(buttons.resume, name === "paused");
      show(buttons.cancel, name !== "idle");
      input.disabled = name === "running";
    }
    function reload() {
      if (window.htmx) {
        window.htmx.ajax("GET", box.dataset.partUrl, { target: box.dataset.target, swap: "outerHTML" });
      } else {
        window.location.reload();
      }
    }

    input.addEventListener("change", function () {
      if (upload) { upload.abort(); upload = null; }
      var file = input.files[0];
      show(bar, false);
      buttons.start.disabled = !file;
      state("idle");
      if (!file) { say(""); return; }
      if (file.size > maxBytes) {
        buttons.start.disabled = true;
        say("「" + file.name + "」有 " + mb(file.size) + "，超过 " + mb(maxBytes) + " 的上限，请压缩后再上传。", true);
        return;
      }
      say("已选择「" + file.name + "」（" + mb(file.size) + "）。");
    });

    buttons.start.addEventListener("click", function () {
      var file = input.files[0];
      if (!file) { return; }
      upload = new window.tus.Upload(file, {
        endpoint: box.dataset.tusEndpoint,
        chunkSize: CHUNK,
        retryDelays: RETRY_DELAYS,
        metadata: { filename: file.name, filetype: file.type || "", nomination_id: nominationId },
        headers: { "X-CSRFToken": box.dataset.csrf },
        storeFingerprintForResuming: true,
        removeFingerprintOnSuccess: true,
        // The same file chosen for another nomination must not resume into this one's upload.
        fingerprint: function (f) {
          return Promise.resolve(["kepu-video", nominationId, f.name, f.type, f.size, f.lastModified].join("-"));
        },
        onProgress: function (sent, total) {
          var pct = total ? Math.floor(sent * 100 / total) : 0;
          show(bar, true);
          bar.value = pct;
          bar.textContent = pct + "%";
          say("已上传 " + mb(sent) + " / " + mb(total) + "（" + pct + "%）");
        },
        onError: function (err) {
          var message = refusal(err);
          if (message) {
            upload = null;
            state("idle");
            buttons.start.disabled = false;
            say("上传未成功：" + message, true);
          } else {
            state("paused");
            say("网络连接中断，已暂停。已上传的部分保留在服务器上，点击“继续上传”从断点继续。", true);
          }
        },
        onSuccess: function () {
          upload = null;
          say("上传完成，视频已保存。");
          reload();
        }
      });
      state("running");
      say("正在连接…");
      upload.findPreviousUploads().then(function (previous) {
        if (previous.length) {
          upload.resumeFromPreviousUpload(previous[0]);
          say("找到上次未完成的上传，从断点继续…");
        }
        upload.start();
      });
    });

    buttons.pause.addEventListener("click", function () {
      if (!upload) { return; }
      upload.abort();
      state("paused");
      say("已暂停。点击“继续上传”从断点继续。");
    });

    buttons.resume.addEventListener("click", function () {
      if (!upload) { return; }
      state("running");
      say("正在继续上传…");
      upload.start();
    });

    buttons.cancel.addEventListener("click", function () {
      if (!upload) { return; }
      var current = upload;
      upload = null;
      current.abort(true).then(function () { say("已取消上传。"); }, function () { say("已取消上传。"); });
      show(bar, false);
      state("idle");
    });
  }

  function init(root) {
    var scope = root && root.querySelectorAll ? root : document;
    scope.querySelectorAll(".tus-upload").forEach(setup);
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  // A part swapped in by htmx (after an upload) brings new controls.
  document.addEventListener("htmx:load", function (e) { init(e.detail && e.detail.elt); });
})();
