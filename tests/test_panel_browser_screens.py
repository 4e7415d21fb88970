"""What the panel's screens say and where, in Chromium at 800×480 and 720×1280 (timing-only daemon).

Sending switched off said as such; every tab following a visit paused and stopped elsewhere
(also with all of the browser's connections to the device in use); feedback shown where the
clinician is looking; long unbroken names kept on screen; PINs set and changed on the
on-screen keypad, whose bottom row stays visible after a wrong PIN; panel-styled error pages;
plain words instead of jargon.
"""

from __future__ import annotations

import re
import signal

import pytest

from appliance.store import open_store
from tests.browser import (
    SIZES,
    chromium,
    enter_pin,
    free_port,
    in_view,
    new_page,
    panel_config,
    panel_daemon,
    quiet_wav,
    shot,
    start_visit,
    status,
    stop_on_panel,
    wait_for_panel,
)
from tests.browser import wait_until as wait

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test

__all__ = ["chromium"]
PIN, OTHER_PIN = "2580", "3691"
SCREENS = ("800x480", "720x1280")
LONG = "Z" * 80  # an identifier pasted without spaces: the longest name the panel accepts
STICKING_OUT_JS = """() => Array.from(document.querySelectorAll('body *')).map(e => [e, e.getBoundingClientRect()])
  .filter(([e, r]) => r.width > 0 && r.height > 0 && (r.right > innerWidth + 0.5 || r.left < -0.5))
  .map(([e, r]) => `${e.tagName.toLowerCase()}#${e.id}.${e.className} right=${Math.round(r.right)}`)"""


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("panel-screens")
    quiet = quiet_wav(tmp / "quiet.wav", 600, seed=3)  # silent room: a visit's lines are written to the store below
    port = free_port()
    cfg = panel_config(tmp, quiet, port, models_dir=None, extra="auto_lock_s = 900\npin_attempts = 20")
    with panel_daemon(cfg, port) as (daemon, base):  # [sync] left out: sending is off, as shipped
        yield daemon, base, tmp


@pytest.fixture(autouse=True)
def no_visit_left_running(panel):
    """A test that failed mid-visit must not make the next one fail too."""
    yield
    if status(panel[1])["session_id"] is not None:
        panel[0].ctl("stop")


def sizes(page, names=SCREENS):
    for name in names:
        w, h = SIZES[name]
        page.set_viewport_size({"width": w, "height": h})
        yield name


def unlock(page, base: str, screen: str = "/settings") -> None:
    page.goto(base + screen)
    if "/unlock" not in page.url:
        return
    if page.locator("#setpin").count():
        page.fill("#pin", PIN)
        page.fill("#confirm", PIN)
        with page.expect_navigation():
            page.click("#setpin")
    else:
        enter_pin(page, PIN)
    page.wait_for_url(re.compile(re.escape(base + screen) + r"(#.*)?$"))


def visit(daemon, tmp, name: str = "R.V.", lines: int = 14, word: str = "") -> str:
    """A stopped visit of ``lines`` lines of two speakers (through the store, as recognition writes them)."""
    sid = daemon.ctl("start", name=name, templates=["SOAP"], consent=True)["session"]["id"]
    with open_store(str(tmp / "state" / "sessions.db")) as store:
        for i in range(lines):
            text = f"Line {i + 1}: the patient describes the pain again in some detail {word}".strip()
            store.add_segment(sid, i * 4.0, i * 4.0 + 3.0, f"S{i % 2 + 1}", text)
    daemon.ctl("stop")
    return sid


def test_sending_switched_off_is_said_with_what_to_do(chromium, panel):
    daemon, base, tmp = panel
    sid = visit(daemon, tmp)
    page = new_page(chromium, "800x480")
    unlock(page, base)
    for size in sizes(page):
        page.goto(base + "/settings")
        sending = page.inner_text("#sync")
        assert "Sending to the clinic is off on this device" in sending and "[sync]" in sending, (size, sending)
        assert "not connected to ;" not in sending
    page.goto(f"{base}/review/{sid}")
    assert "Sending to the clinic is off" in page.inner_text("#sending-off")  # said before Send, too
    with page.expect_navigation():
        page.click("#send")
    for size in sizes(page):
        sent = page.inner_text("#sent-text")  # in the bar that stays in view
        assert "sending to the clinic is off" in sent.lower() and "automatically" not in sent, sent
        what_to_do = page.inner_text("#sending-off")
        assert "Sending to the clinic is off" in what_to_do and "[sync]" in what_to_do, what_to_do
        shot(page, "review-sending-off", (size,))
    page.context.close()


def test_every_tab_follows_a_visit_paused_and_stopped_elsewhere(chromium, panel):
    """Pause in one tab, Stop in another, with six panel tabs open: as many as Chromium keeps
    connections to one server, each held by a tab's event stream."""
    _, base, _ = panel
    context = chromium.new_context(viewport={"width": 800, "height": 480}, has_touch=True)
    a = context.new_page()
    start_visit(a, base, "T.B.")
    sid = status(base)["session_id"]
    b = context.new_page()
    b.set_viewport_size({"width": 720, "height": 1280})
    b.goto(base + "/visit")
    starts = []
    for _ in range(4):
        p = context.new_page()
        p.goto(base + "/")
        starts.append(p)
    for p in (a, b, *starts):
        p.set_default_timeout(10_000)
    a.wait_for_timeout(1500)  # every tab's event stream is open

    a.click("#pause")
    a.wait_for_function("document.querySelector('#rec-state-text').textContent === 'PAUSED'")
    b.wait_for_function("document.querySelector('#rec-state-text').textContent === 'PAUSED'")
    assert b.locator("#resume").is_visible()
    for p in starts:  # Start's card of the live visit says it is paused
        p.wait_for_function("document.querySelector('#live-card h1').textContent.includes('paused')")
    stop_on_panel(b)
    for p in (a, b, *starts):
        p.wait_for_url(f"{base}/review/{sid}")
        assert p.inner_text("#live-badge-text") == "Not recording"
        assert p.locator("#resume").count() == 0
    context.close()


def test_a_button_on_a_screen_that_missed_the_stop_never_acts_on_another_visit(chromium, panel):
    daemon, base, _ = panel
    page = new_page(chromium, "800x480")
    start_visit(page, base, "OLD")
    old = status(base)["session_id"]
    with page.expect_navigation():
        page.click("#pause")
    page.route("**/events*", lambda route: route.abort())  # this screen hears nothing more (network glitch)
    page.reload()
    assert page.inner_text("#rec-state-text") == "PAUSED"
    daemon.ctl("stop")  # the button ends the visit...
    new = daemon.ctl("start", name="NEW")["session"]["id"]  # ...and starts the next patient's
    with page.expect_navigation():
        stop_on_panel(page)  # the stale screen's Stop
    assert page.url == f"{base}/review/{old}"
    assert "already stopped" in page.inner_text(".flash-warning")
    st = status(base)
    assert (st["session_id"], st["state"]) == (new, "recording")  # the next patient's visit goes on
    daemon.ctl("stop")
    page.unroute("**/events*")
    page.context.close()


def test_feedback_appears_where_the_clinician_is_looking(chromium, panel):
    daemon, base, tmp = panel
    sid = visit(daemon, tmp, lines=16)
    page = new_page(chromium, "800x480")
    unlock(page, base)
    for size in sizes(page):
        # Settings: a refused enrolment is said beside the enrolment card, which the page scrolled to.
        page.goto(base + "/settings")
        page.fill("#clinician", "")
        with page.expect_navigation():
            page.click("#enrol-btn")
        page.wait_for_timeout(300)  # the jump to #enrol
        assert "type the clinician's name" in page.inner_text("#enrol .flash-error")
        assert in_view(page, "#enrol .flash-error"), size
        assert in_view(page, "#enrol-btn") or in_view(page, "#enrol h2"), size

        # Review: a correction far down the transcript is confirmed there, not at the top of the page.
        page.goto(f"{base}/review/{sid}")
        last = page.locator("article.seg").last
        last.locator("summary.edit-btn").click()
        last.locator("textarea").fill(f"Corrected at {size}.")
        with page.expect_navigation():
            last.locator("button.save-text").click()
        page.wait_for_timeout(300)
        assert page.inner_text(".flash-ok") == "Text corrected."
        assert in_view(page, ".flash-ok"), size
        assert page.inner_text("article.seg:last-of-type .text") == f"Corrected at {size}."
        shot(page, "review-flash-at-edit", (size,))
    page.context.close()


def test_long_unbroken_names_stay_on_screen(chromium, panel):
    _, base, tmp = panel
    page = new_page(chromium, "800x480")
    start_visit(page, base, LONG)
    sid = status(base)["session_id"]
    with open_store(str(tmp / "state" / "sessions.db")) as store:
        for i in range(3):
            store.add_segment(sid, i * 4.0, i * 4.0 + 3.0, "S1", "Seen at https://portal.example/" + "x" * 150)
    page.reload()
    for size in sizes(page):
        assert page.evaluate(STICKING_OUT_JS) == [], f"Recording at {size}"
    with page.expect_navigation():
        stop_on_panel(page)
    with open_store(str(tmp / "state" / "sessions.db")) as store:
        store.set_speaker_name(sid, "S1", "W" * 40, actor="panel")
    unlock(page, base, f"/review/{sid}")
    page.click("#speakers > summary")
    for size in sizes(page):
        assert page.evaluate(STICKING_OUT_JS) == [], f"Review at {size}"
        shot(page, "review-long-names", (size,))
    page.goto(base + "/history")
    for size in sizes(page):
        assert page.evaluate(STICKING_OUT_JS) == [], f"History at {size}"
    page.context.close()


def test_pins_are_set_and_changed_on_the_keypad_which_stays_whole_after_a_wrong_pin(chromium, panel):
    _, base, tmp = panel
    pin_file = tmp / "state" / "panel" / "pin.json"
    page = new_page(chromium, "800x480")

    def tap(digits: str) -> None:  # the kiosk has no keyboard: only the keypad's buttons
        for d in digits:
            page.click(f'.keypad button[data-key="{d}"]')

    for size, (old, new) in zip(sizes(page), ((PIN, OTHER_PIN), (OTHER_PIN, PIN)), strict=True):
        # First run (a fresh device, or IT removed the PIN file to reset it).
        pin_file.unlink(missing_ok=True)
        page.goto(base + "/settings")
        assert "Set the clinician PIN" in page.inner_text("h1")
        shot(page, "unlock-first-run", (size,))
        tap(old)
        page.click('.keypad button[data-key="OK"]')  # "Next": on to the second field
        tap(old)
        with page.expect_navigation():
            page.click('.keypad button[data-key="OK"]')
        assert page.url.endswith("/settings"), size

        # Change PIN in Settings, on its own keypad; the result is said beside it.
        page.click("#pin-current")
        tap(old)
        page.click('#change-pin .keypad button[data-key="OK"]')
        tap(new)
        page.click('#change-pin .keypad button[data-key="OK"]')
        tap(new)
        with page.expect_navigation():
            page.click('#change-pin .keypad button[data-key="OK"]')
        page.wait_for_timeout(300)
        assert page.inner_text(".flash-ok") == "PIN saved."
        assert in_view(page, ".flash-ok"), size
        shot(page, "settings-pin-saved", (size,))

        # A wrong PIN: the message shows and the whole keypad still fits on the screen.
        page.click("#nav-lock")
        page.wait_for_url(base + "/")
        page.goto(base + "/settings")
        enter_pin(page, "1357")
        assert "Wrong PIN" in page.inner_text(".flash-error")
        for key in ("⌫", "0", "OK"):
            assert in_view(page, f'.keypad button[data-key="{key}"]'), (size, key)
        shot(page, "unlock-wrong-pin", (size,))
        enter_pin(page, new)
        page.wait_for_url(base + "/settings")
    assert pin_file.exists()
    page.context.close()


def test_errors_are_panel_pages_in_plain_words(chromium, panel):
    daemon, base, tmp = panel
    sid = visit(daemon, tmp, lines=2)
    page = new_page(chromium, "800x480")
    for path, code, title in (("/visit/pause", 405, "Not possible here"), ("/nowhere", 404, "Not found")):
        resp = page.goto(base + path)
        assert resp.status == code
        assert page.inner_text("h1") == title
        assert page.locator("#live-badge").count() == 1 and page.locator("a.btn", has_text="Back").count() == 1
    unlock(page, base, f"/review/{sid}")
    first = page.locator("article.seg").first
    first.locator("summary.edit-btn").click()
    first.locator("textarea").evaluate("(t) => { t.value = 'word '.repeat(60000); }")  # 300 kB pasted
    with page.expect_navigation():
        first.locator("button.save-text").click()
    assert page.inner_text("h1") == "Too much at once"
    assert "Nothing was changed" in page.inner_text("main")
    shot(page, "error-too-large", SCREENS)
    page.context.close()


def test_plain_words_instead_of_jargon(chromium, panel):
    daemon, base, tmp = panel
    sid = visit(daemon, tmp, lines=4)
    page = new_page(chromium, "800x480")
    unlock(page, base, f"/review/{sid}")
    with page.expect_navigation():
        page.click("#send")
    first = page.locator("article.seg").first
    first.locator("summary.edit-btn").click()
    first.locator("textarea").fill("Changed after sending.")
    with page.expect_navigation():
        first.locator("button.save-text").click()
    page.click("#speakers > summary")
    for size in sizes(page):
        text = page.inner_text("main")
        assert not re.search(r"\bversion \d", text), (size, text)  # what was sent, in words
        assert page.inner_text("#sent-version") == "your latest changes are included"  # re-queued by the edit
        assert not re.search(r"\bS\d\b", text), text  # speakers by name, not by label
    # The screen's link to the recorder breaks (the daemon restarts): said so a clinician understands.
    daemon.kill(signal.SIGTERM)
    page.wait_for_selector("#conn:not(.hidden)", timeout=10_000)
    banner = page.inner_text("#conn")
    assert "device lost" not in banner and "recorder" in banner, banner
    daemon.start()
    wait_for_panel(daemon, base)
    page.wait_for_selector("#conn.hidden", state="attached", timeout=15_000)
    wait(lambda: status(base)["state"] == "idle", 10, "the daemon back")
    page.context.close()
