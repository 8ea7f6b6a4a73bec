// 推荐单位 portal: live character counts, the deadline countdown, previews of chosen photos and a
// confirmation before deleting or withdrawing. The pages work without it; the server enforces every limit.
(function () {
  "use strict";

  function updateCount(area) {
    var counter = area.parentElement.querySelector(".char-count");
    if (!counter) { return; }
    var max = parseInt(area.getAttribute("data-maxchars"), 10);
    var n = area.value.replace(/\r\n/g, "\n").length;
    counter.textContent = n + " / " + max + " 字" + (n > max ? "（超出 " + (n - max) + " 字）" : "");
    counter.classList.toggle("over", n > max);
  }

  function countdown(el) {
    var closes = Date.parse(el.getAttribute("data-deadline"));
    if (isNaN(closes)) { return; }
    function tick() {
      var left = Math.max(0, Math.floor((closes - Date.now()) / 1000));
      if (left === 0) {
        el.textContent = "已过报送截止时间";
        el.classList.add("closed");
        return;
      }
      var d = Math.floor(left / 86400), h = Math.floor(left % 86400 / 3600), m = Math.floor(left % 3600 / 60);
      el.textContent = "距截止还有 " + d + " 天 " + h + " 小时 " + m + " 分";
      window.setTimeout(tick, 30000);
    }
    tick();
  }

  function previews(input) {
    var box = document.querySelector('.photo-previews[data-for="' + input.name + '"]');
    if (!box || !window.FileReader) { return; }
    input.addEventListener("change", function () {
      box.textContent = "";
      Array.prototype.forEach.call(input.files || [], function (file) {
        if (!/^image\/(jpeg|png)$/.test(file.type)) { return; }
        var img = document.createElement("img");
        img.alt = file.name;
        // A data: URL, not URL.createObjectURL: the CSP's img-src allows 'self' and data:, never blob:.
        var reader = new FileReader();
        reader.addEventListener("load", function () { img.src = reader.result; });
        reader.readAsDataURL(file);
        box.appendChild(img);
      });
    });
  }

  function bind(root) {
    root.querySelectorAll("textarea[data-maxchars]").forEach(function (area) {
      if (area.dataset.bound) { return; }
      area.dataset.bound = "1";
      area.addEventListener("input", function () { updateCount(area); });
      updateCount(area);
    });
    root.querySelectorAll(".countdown[data-deadline]").forEach(countdown);
    root.querySelectorAll('input[type="file"][name="photos"]').forEach(previews);
    root.querySelectorAll("form.confirm[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { e.preventDefault(); }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { bind(document); });
  document.addEventListener("htmx:afterSwap", function (e) { bind(e.target); });
})();
