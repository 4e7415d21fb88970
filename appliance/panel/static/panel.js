/* Exam-room panel: live updates (SSE), auto-lock, keypad, copy. No external code, no build step. */
(function () {
  "use strict";
  var body = document.body;
  var screen = body.dataset.screen;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var pageState = body.dataset.liveState;
  var pageSession = body.dataset.liveSession;
  var autoLockMs = (parseInt(body.dataset.autoLock, 10) || 120) * 1000;
  var $ = function (id) { return document.getElementById(id); };

  function speakerClass(label) {
    var m = /^S(\d+)$/.exec(label || "");
    return m ? ((parseInt(m[1], 10) - 1) % 6) + 1 : 0;
  }
  function speakerName(label, names) {
    if (names && names[label]) { return names[label]; }
    var m = /^S(\d+)$/.exec(label || "");
    return m ? "Speaker " + parseInt(m[1], 10) : (label || "…");
  }
  function mmss(s) {
    s = Math.max(0, Math.floor(s || 0));
    var m = Math.floor(s / 60), r = s % 60;
    return m + ":" + (r < 10 ? "0" : "") + r;
  }
  // Once the page is leaving (a form was sent, or it follows the device elsewhere), later events
  // must not start a second navigation: the first one already says where to go.
  var leaving = false;
  // The event stream holds one of the browser's few connections to the device (Chromium: 6 per
  // server, shared by all tabs). It is closed before leaving, so the navigation never waits for
  // a connection held by the page it replaces (with several panel tabs open it would wait forever).
  var es = null;
  function closeEvents() { if (es) { es.close(); es = null; } }
  function go(url) {
    leaving = true;
    closeEvents();
    if (location.pathname + location.search === url) { location.reload(); } else { location.href = url; }
  }
  function reload() { leaving = true; closeEvents(); location.reload(); }
  document.addEventListener("submit", function (ev) {
    if (ev.defaultPrevented) { return; }
    leaving = true;
    closeEvents();
  });
  window.addEventListener("pagehide", closeEvents);
  // A page restored from the back/forward cache shows an old state: load it afresh.
  window.addEventListener("pageshow", function (ev) { if (ev.persisted) { location.reload(); } });

  /* -- busy overlay for slow actions (Stop drains recognition) -- */
  document.querySelectorAll("form[data-busy]").forEach(function (f) {
    f.addEventListener("submit", function () {
      $("busy-text").textContent = f.dataset.busy;
      $("busy").classList.remove("hidden");
    });
  });

  /* -- after an edit, reopen the section it came from, and say how it went right there -- */
  var target = location.hash && document.getElementById(location.hash.slice(1));
  if (target && target.tagName === "DETAILS") { target.open = true; }
  var flashes = document.querySelectorAll("main > .flash");
  if (target && flashes.length) {
    // At the top of <main> a message would be above the part of the page the anchor scrolled to.
    flashes.forEach(function (f) {
      f.classList.add("flash-here");
      if (target.tagName === "DETAILS") { target.parentNode.insertBefore(f, target); }  // <summary> stays first
      else { target.insertBefore(f, target.firstChild); }
    });
    var showFlash = function () { flashes[0].scrollIntoView({ block: "start" }); };
    showFlash();
    window.addEventListener("load", showFlash);  // after the browser's own jump to the anchor
  }

  /* -- PIN keypad: types into the PIN field tapped last; OK goes to the next field, then submits -- */
  document.querySelectorAll(".keypad").forEach(function (pad) {
    var fields = (pad.dataset.targets || pad.dataset.target || "").split(" ").map($).filter(Boolean);
    var ok = pad.querySelector('[data-key="OK"]');
    var active = fields[0];
    function select(f) {
      active = f;
      fields.forEach(function (x) { x.classList.toggle("pin-active", x === f); });
      if (ok) { ok.textContent = fields.indexOf(f) < fields.length - 1 ? "Next" : "OK"; }
    }
    fields.forEach(function (f) { f.addEventListener("focus", function () { select(f); }); });
    if (fields.length > 1) { select(active); }
    pad.addEventListener("click", function (ev) {
      var k = ev.target.dataset && ev.target.dataset.key;
      if (!k || !active) { return; }
      var i = fields.indexOf(active);
      if (k === "OK") {
        if (i < fields.length - 1) { ev.preventDefault(); select(fields[i + 1]); }
        return;
      }
      active.value = k === "⌫" ? active.value.slice(0, -1) : active.value + k;
    });
  });

  /* -- copy a note -- */
  document.querySelectorAll("button[data-copy]").forEach(function (b) {
    b.addEventListener("click", function () {
      var text = $(b.dataset.copy).textContent;
      var done = function () { b.textContent = "Copied"; setTimeout(function () { b.textContent = "Copy"; }, 2000); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(b.dataset.copy); done(); });
      } else { fallbackCopy(b.dataset.copy); done(); }
    });
  });
  function fallbackCopy(id) {
    var range = document.createRange();
    range.selectNodeContents($(id));
    var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
    try { document.execCommand("copy"); } catch (e) { /* selection stays for a manual copy */ }
  }

  /* -- auto-lock: back to Start after inactivity; the server enforces it too -- */
  var lastTouch = Date.now(), lastPing = Date.now();
  function touched() {
    lastTouch = Date.now();
    if (lastTouch - lastPing > Math.min(15000, autoLockMs / 3)) {
      lastPing = lastTouch;
      fetch("/activity", { method: "POST", headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" });
    }
  }
  ["pointerdown", "keydown", "input", "wheel"].forEach(function (e) { document.addEventListener(e, touched, true); });
  setInterval(function () {
    if (Date.now() - lastTouch < autoLockMs + 1000) { return; }
    // A visit in progress stays on screen (Pause and Stop must stay in reach); the server has
    // locked this browser, so only what needs the PIN goes away.
    if (screen === "visit") { lockInPlace(); return; }
    var name = $("name");
    var sensitive = screen !== "start" || body.dataset.unlocked === "yes" || (name && name.value);
    if (sensitive && !leaving) { go("/"); }
  }, 1000);

  function lockInPlace() {
    if (body.dataset.unlocked !== "yes") { return; }
    body.dataset.unlocked = "no";
    var lockButton = $("nav-lock");  // History and Settings now ask for the PIN (the server checks)
    if (lockButton) { lockButton.closest("form").remove(); }
  }

  /* -- live updates -- */
  function levelPct(levels) {
    if (!levels || !levels.length) { return 0; }
    var db = Math.max.apply(null, levels);
    return Math.max(0, Math.min(100, (db + 60) / 60 * 100));
  }
  function onLive(st) {
    var refining = $("refined-msg");
    if (refining && refining.dataset.refining === "yes" && st.refine && st.refine.sessions.indexOf(refining.dataset.session) < 0) {
      onRefined({session_id: refining.dataset.session});
    }
    if (leaving) { return; }
    var badge = $("live-badge");
    if (badge) {
      badge.className = "live-badge state-" + st.state;
      $("live-badge-text").textContent = st.state === "recording" ? "Recording" : st.state === "paused" ? "Paused" : "Not recording";
    }
    var storageMsg = $("storage-msg");  // full disk: said on every screen until space is freed
    if (storageMsg) {
      var sm = (st.storage && (st.storage.message || st.storage.notice)) || "";
      storageMsg.textContent = sm;
      storageMsg.classList.toggle("hidden", !sm);
    }
    // A Stop has ended the recording and its visit is being saved ("stopping": a moment, or until
    // space is freed on a full disk). Reloading now would find no visit and strand this screen on
    // Start; the event that the visit is saved follows, and with it the way to its Review.
    if (st.state === "stopping") { return; }
    // The physical button (or another screen) changed the visit: follow it.
    var ended = pageSession && (!st.session_id || (st.session_id === pageSession && st.state === "stopped"));
    if (ended) {
      if (screen === "visit" || screen === "start") { go("/review/" + pageSession); return; }
      pageSession = ""; pageState = "idle"; return;
    }
    if (st.session_id && st.session_id !== pageSession && st.state !== "stopped") { go("/visit"); return; }
    // Paused or resumed elsewhere: the Recording screen and Start's live card show it.
    if (st.session_id && st.state !== pageState && (screen === "visit" || screen === "start")) { reload(); return; }
    var el = $("elapsed");
    if (el && st.session_id) { el.textContent = mmss(st.elapsed_s); }
    if (screen === "visit" && st.speaker_names) { liveNames(st.speaker_names); }
    if (screen === "visit" && st.capture) {
      $("meter").style.width = levelPct(st.capture.levels_dbfs) + "%";
      var msg = $("mic-msg");
      msg.textContent = st.capture.message;
      var bad = st.capture.state === "unplugged" || st.capture.state === "error";
      msg.classList.toggle("warn", bad || st.capture.muted_suspected || st.capture.clipping);
    }
    if (screen === "settings" && st.tools) {
      // Each tool reports in its own card (the one its button is in), not off-screen in another.
      var enrol = st.tools.tool === "enrol";
      var tm = $(enrol ? "enrol-msg" : "tool-msg");
      if (st.tools.message) { tm.textContent = st.tools.message + (st.tools.heard_s ? " (" + Math.floor(st.tools.heard_s) + " s)" : ""); }
      if (enrol) { $("enrol-meter-box").classList.remove("hidden"); }
      $(enrol ? "enrol-meter" : "meter").style.width = levelPct(st.tools.levels_dbfs) + "%";
    }
  }

  var transcript = $("transcript");
  // The live transcript keeps its newest line and the words being spoken in view, unless the
  // clinician scrolled up to read something (then it waits until they scroll back down).
  var following = true;
  function atEnd() { return transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 24; }
  function keepNewestInView() { if (following) { transcript.scrollTop = transcript.scrollHeight; } }
  if (screen === "visit" && transcript) {
    transcript.addEventListener("scroll", function () { following = atEnd(); });
    keepNewestInView();
  }
  var names = {}, storedNames = {}, shownNames = "";
  if (transcript && transcript.dataset.speakers) { try { storedNames = JSON.parse(transcript.dataset.speakers); } catch (e) { storedNames = {}; } }
  names = Object.assign({}, storedNames);
  // The live diarizer's role names (Clinician / Patient once a voice is enrolled) can change as
  // it hears more; names already in the store (given on this device) win.
  function liveNames(live) {
    var key = JSON.stringify(live);
    if (key === shownNames) { return; }
    shownNames = key;
    names = Object.assign({}, live, storedNames);
    transcript.querySelectorAll(".seg[data-speaker]").forEach(function (p) {
      p.querySelector(".spk").textContent = speakerName(p.dataset.speaker, names) + (p.dataset.unsure ? "?" : "");
    });
  }
  function onSegment(seg) {
    if (screen !== "visit" || seg.text === undefined || seg.session_id !== pageSession) { return; }
    if (transcript.querySelector('[data-id="' + seg.id + '"]')) { return; }
    var hint = $("empty-hint"); if (hint) { hint.remove(); }
    var p = document.createElement("p");
    p.className = "seg spk-" + speakerClass(seg.speaker);
    p.dataset.id = seg.id;
    p.dataset.speaker = seg.speaker;
    p.dataset.start = seg.start; p.dataset.end = seg.end;
    var s = document.createElement("span"); s.className = "spk";
    if (seg.speaker_uncertain) { p.dataset.unsure = "1"; s.classList.add("spk-unsure"); }
    s.textContent = speakerName(seg.speaker, names) + (p.dataset.unsure ? "?" : "");
    var t = document.createElement("span"); t.className = "text"; t.textContent = seg.text;
    p.appendChild(s); p.appendChild(document.createTextNode(" ")); p.appendChild(t);
    var partial = $("partial");
    transcript.insertBefore(p, partial);
    partial.classList.add("hidden"); partial.textContent = "";
    keepNewestInView();
  }
  function onPartial(pt) {
    if (screen !== "visit" || pt.text === undefined || pt.session_id !== pageSession) { return; }
    var partial = $("partial");
    partial.textContent = pt.text;
    partial.classList.toggle("hidden", !pt.text);
    var hint = $("empty-hint"); if (hint) { hint.remove(); }
    keepNewestInView();
  }

  // The refined pass finished for the visit on this Review page: show its text, unless something was
  // typed and not saved (a reload would lose it): then say so and let the user reload.
  // Told by its event, or by the status tick no longer listing the visit (an event sent while this
  // page was still connecting is not missed).
  function typedNotSaved() {
    var fields = document.querySelectorAll("textarea, input[type=text]");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value !== fields[i].defaultValue) { return true; }
    }
    return false;
  }
  function onRefined(ev) {
    var msg = $("refined-msg");
    if (screen !== "review" || !msg || ev.session_id !== msg.dataset.session || msg.dataset.refining !== "yes") { return; }
    msg.dataset.refining = "done";
    if (typedNotSaved()) {
      msg.textContent = "The second pass is done. Save or close your edit, then reload this page to see its text.";
      return;
    }
    window.location.reload();
  }

  if (window.EventSource && screen !== "unlock") {
    var pass = screen === "visit" && $("rec") ? $("rec").dataset.stream : "";  // issued by this audited page load
    var url = "/events" + (pass ? "?text=" + encodeURIComponent(pass) : "");
    es = new EventSource(url);
    var parse = function (f) { return function (ev) { try { f(JSON.parse(ev.data)); } catch (e) { /* ignore */ } }; };
    es.addEventListener("status", parse(onLive));
    es.addEventListener("state", parse(onLive));
    es.addEventListener("segment", parse(onSegment));
    es.addEventListener("partial", parse(onPartial));
    es.addEventListener("refined", parse(onRefined));
    es.onopen = function () { $("conn").classList.add("hidden"); };
    es.onerror = function () { $("conn").classList.remove("hidden"); };
  }
})();
