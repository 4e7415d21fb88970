// Clinic web view: a note sentence shows its evidence. Hover or focus highlights the transcript
// segments it came from; a tap (touch screens have no hover) keeps them highlighted until the next tap.
(function () {
  "use strict";
  var pinned = null;

  function segmentsOf(sentence) {
    var ids = (sentence.getAttribute("data-evidence") || "").split(" ").filter(Boolean);
    var all = document.querySelectorAll(".segment[data-seg]");
    return Array.prototype.filter.call(all, function (seg) { return ids.indexOf(seg.getAttribute("data-seg")) >= 0; });
  }

  function clear() {
    document.querySelectorAll(".segment.evidence").forEach(function (s) { s.classList.remove("evidence"); });
    document.querySelectorAll(".sentence.active").forEach(function (s) { s.classList.remove("active"); });
  }

  function show(sentence) {
    clear();
    sentence.classList.add("active");
    var segs = segmentsOf(sentence);
    segs.forEach(function (s) { s.classList.add("evidence"); });
    if (segs.length) { reveal(segs[0]); }
  }

  // Scroll the transcript pane only, never the page: scrolling the page would move the sentence
  // out from under the pointer (and a tap would land on whatever took its place).
  function reveal(seg) {
    var pane = seg.closest(".transcript");
    if (!pane) { return; }
    var top = seg.offsetTop, bottom = top + seg.offsetHeight;  // .transcript is positioned: offsets are in it
    if (top < pane.scrollTop || bottom > pane.scrollTop + pane.clientHeight) {
      pane.scrollTop = Math.max(0, top - pane.clientHeight / 3);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".sentence").forEach(function (sentence) {
      sentence.addEventListener("mouseenter", function () { show(sentence); });
      sentence.addEventListener("focus", function () { show(sentence); });
      sentence.addEventListener("mouseleave", function () { if (pinned) { show(pinned); } else { clear(); } });
      sentence.addEventListener("click", function () {
        pinned = pinned === sentence ? null : sentence;
        if (pinned) { show(pinned); } else { clear(); }
      });
    });
  });
})();
