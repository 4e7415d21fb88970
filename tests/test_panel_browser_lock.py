"""The panel in Chromium without speech recognition: PIN, auto-lock, CSRF, the button, mic problems.

One daemon (timing-only recognizer, a quiet replayed "microphone") serves every test here;
screenshots of Start, PIN, History and Settings at the three display sizes are saved.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import stat
import time

import pytest

from appliance.store import open_store
from tests.browser import (
    chromium,
    enter_pin,
    free_port,
    new_page,
    panel_config,
    panel_daemon,
    quiet_wav,
    set_pin_via_first_run,
    shot,
    small_targets,
    status,
    wait_for_panel,
)
from tests.browser import wait_until as wait

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test

__all__ = ["chromium"]
AUTO_LOCK_S = 10
PIN = "2580"


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("panel-lock")
    quiet = quiet_wav(tmp / "quiet.wav")  # a microphone that hears nothing: the panel must say so
    port = free_port()
    cfg = panel_config(tmp, quiet, port, models_dir=None, capture="silence_alert_seconds = 3.0",
                       extra=f"auto_lock_s = {AUTO_LOCK_S}\npin_attempts = 3\npin_lockout_s = 30\n"
                             'custom_templates = ["Cardiology follow-up"]\n[device]\nid = "room-7-pi"\nroom = "Exam 7"')
    with panel_daemon(cfg, port) as (daemon, base):
        yield daemon, base, tmp


def test_start_screen_offers_templates_and_consent_and_shows_no_transcript(chromium, panel):
    _, base, _ = panel
    page = new_page(chromium, "800x480")
    page.goto(base + "/")
    labels = page.locator(".chips .chip span").all_inner_texts()
    assert [t.replace("✓", "").strip() for t in labels] == ["SOAP", "H&P", "Progress Note", "Patient Instructions",
                                                            "Cardiology follow-up"]
    assert page.is_checked('input[value="SOAP"]') and not page.is_checked("#consent")
    assert page.inner_text("#live-badge") == "Not recording"
    for size in ("800x480", "720x1280", "1280x800"):
        page.set_viewport_size({"width": int(size.split("x")[0]), "height": int(size.split("x")[1])})
        assert small_targets(page) == [], size
        assert page.locator("#start").is_visible()
    shot(page, "start")
    page.context.close()


def test_physical_button_and_panel_stay_in_step_and_a_silent_mic_is_reported(chromium, panel):
    daemon, base, _ = panel
    page = new_page(chromium, "1280x800")
    page.goto(base + "/")
    # The GPIO button and the control socket call the same controller: the panel must follow within a second.
    t0 = time.monotonic()
    daemon.ctl("start", name="BTN")
    page.wait_for_url(base + "/visit", timeout=3000)
    assert time.monotonic() - t0 < 3.0
    assert page.inner_text("#rec-state-text") == "RECORDING"
    assert page.inner_text("#live-badge-text") == "Recording"
    # A microphone that hears nothing is said in plain words (capture.silence_alert_seconds = 3 here).
    msg = page.locator("#mic-msg")
    wait(lambda: "is it muted" in msg.inner_text(), 25, "muted microphone warning")
    assert "warn" in (msg.get_attribute("class") or "")
    shot(page, "visit-muted", ("800x480",))
    t0 = time.monotonic()
    daemon.ctl("pause")
    page.wait_for_function("document.querySelector('#rec-state-text').textContent.startsWith('PAUSED')",
                           timeout=3000)
    assert time.monotonic() - t0 < 3.0
    assert page.locator("#resume").is_visible()
    page.click("#resume")  # the panel drives the daemon too
    wait(lambda: status(base)["state"] == "recording", 5, "resume from the panel")
    sid = status(base)["session_id"]
    daemon.ctl("stop")
    page.wait_for_url(f"{base}/review/{sid}", timeout=5000)
    assert page.inner_text("#visit-state") == "To review"
    page.context.close()


def test_first_run_sets_a_pin_that_then_guards_history_and_settings(chromium, panel):
    _, base, _ = panel
    page = new_page(chromium, "720x1280")
    set_pin_via_first_run(page, base, PIN)
    assert page.locator(".hist-row").count() >= 1
    assert "To review" in page.inner_text("#history")
    shot(page, "history")
    page.click("#nav-settings")
    page.wait_for_url(base + "/settings")
    assert page.inner_text("#device-id") == "room-7-pi"
    assert "none" in page.inner_text("#model")
    assert "MB" in page.inner_text("#storage")
    shot(page, "settings")
    page.click("#nav-lock")
    page.wait_for_url(base + "/")
    for screen in ("/history", "/settings"):
        page.goto(base + screen)
        assert "/unlock" in page.url
    shot(page, "unlock")
    page.context.close()


def test_a_state_change_without_csrf_token_is_refused(chromium, panel):
    daemon, base, _ = panel
    page = new_page(chromium)
    page.goto(base + "/")
    before = status(base)
    resp = page.request.post(base + "/start", form={"name": "EVIL"})  # same cookies, no token
    assert resp.status == 403 and "Nothing was changed" in resp.text()
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    resp = page.request.post(base + "/start", form={"name": "EVIL", "csrf_token": "x" + token[1:]})
    assert resp.status == 403
    assert status(base)["session_id"] is None and before["session_id"] is None
    names = [line for line in daemon.log.read_text().splitlines() if "CSRF token refused" in line]
    assert len(names) >= 2
    page.context.close()


def test_auto_lock_returns_to_start_and_hides_the_transcript(chromium, panel):
    _, base, _ = panel
    page = new_page(chromium)
    page.goto(base + "/history")
    enter_pin(page, PIN)
    page.wait_for_url(base + "/history")
    review = page.locator(".hist-link").first.get_attribute("href")
    assert re.fullmatch(r"/review/[0-9a-f-]+", review)
    page.goto(base + review)
    assert page.locator("#transcript").count() == 1
    t0 = time.monotonic()
    page.wait_for_url(base + "/", timeout=(AUTO_LOCK_S + 5) * 1000)  # nobody touched the panel
    assert time.monotonic() - t0 >= AUTO_LOCK_S - 1  # not before the configured time
    assert page.locator("#transcript").count() == 0
    page.goto(base + review)  # the transcript now needs the PIN again
    assert "/unlock" in page.url
    page.goto(base + "/history")
    assert "/unlock" in page.url
    assert "Enter the clinician PIN" in page.inner_text("h1")
    page.context.close()


def test_a_failing_edit_says_so_plainly_and_the_live_visit_keeps_recording(chromium, panel):
    daemon, base, tmp = panel
    db = tmp / "state" / "sessions.db"
    daemon.ctl("start", name="GONE")
    gone = daemon.ctl("stop")["session"]["id"]
    daemon.ctl("start", name="BUSY")
    busy = daemon.ctl("stop")["session"]["id"]
    live = daemon.ctl("start", name="LIVE")["session"]["id"]
    page = new_page(chromium, "1280x800")
    page.goto(f"{base}/review/{gone}")
    enter_pin(page, PIN)
    page.wait_for_url(f"{base}/review/{gone}")
    assert page.inner_text("#live-badge-text") == "Recording"

    # Retention deletes the visit while its Review page is open; then the clinician saves an edit.
    with open_store(str(db)) as store:
        store.purge(gone, actor="retention")
    page.fill("#details-form input[name=name]", "G.O.")
    with page.expect_navigation():  # the form post redirects
        page.click("#save-details")
    assert page.inner_text(".flash-error") == ("This visit's transcript has been deleted from the device after "
                                               "the retention period.")
    assert page.inner_text("#visit-state") == "Deleted after retention"

    # A store failure (the database locked by another writer beyond the busy timeout) on an edit.
    page.goto(f"{base}/review/{busy}")
    page.fill("#details-form input[name=name]", "B.Y.")
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        # A tap as in the browser, without Playwright waiting for the page (which waits for the lock).
        page.evaluate("() => setTimeout(() => document.getElementById('save-details').click(), 0)")
        wait(lambda: f"panel error on /review/{busy}/details" in daemon.log.read_text(), 20, "the store error")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    page.wait_for_url(f"{base}/review/{busy}")
    msg = page.inner_text(".flash-error")
    assert "could not be done" in msg and "still being recorded" in msg, msg
    assert "OperationalError" not in msg and "locked" not in msg  # words for a clinician, details in the log
    shot(page, "review-store-error", ("800x480",))

    # Nothing reached the visit in progress: same visit, still recording, time still running.
    st = status(base)
    assert (st["session_id"], st["state"]) == (live, "recording")
    wait(lambda: status(base)["elapsed_s"] > st["elapsed_s"] + 1, 5, "recorded time going on")
    page.goto(base + "/visit")
    assert page.inner_text("#rec-state-text") == "RECORDING"
    with open_store(str(db)) as store:
        assert store.get_session(busy).name == "BUSY"  # the failed edit changed nothing
        assert store.get_session(live).state == "recording"
    daemon.ctl("stop")
    page.context.close()


def test_wrong_pins_are_rate_limited_and_the_lockout_survives_a_daemon_restart(chromium, panel):
    daemon, base, tmp = panel
    page = new_page(chromium, "800x480")
    page.goto(base + "/settings")
    assert "/unlock" in page.url
    for _ in range(2):
        enter_pin(page, "1111")
        assert "Wrong PIN" in page.inner_text(".flash-error")
    enter_pin(page, "1112")
    assert "blocked for 30 seconds" in page.inner_text(".flash-error")
    enter_pin(page, PIN)  # even the right PIN is refused during the pause
    assert "wait" in page.inner_text(".flash-error") and "/unlock" in page.url
    page.context.close()

    attempts = tmp / "state" / "panel" / "pin-attempts.json"
    assert stat.S_IMODE(attempts.stat().st_mode) == 0o600
    assert status(base)["session_id"] is None
    daemon.kill(signal.SIGTERM)
    daemon.start()
    wait_for_panel(daemon, base)
    page = new_page(chromium, "800x480")
    page.goto(base + "/settings")
    enter_pin(page, PIN)  # the right PIN: still refused, the lockout goes on after the restart
    assert "Too many wrong PINs" in page.inner_text(".flash-error") and "/unlock" in page.url
    page.context.close()
