"""Auto-lock per browser session in Chromium, and a visit in progress that stays on screen.

One daemon (timing-only recognizer, a quiet replayed microphone) with the shortest auto-lock
(5 s). Two browser contexts are two browsers (separate cookies): one busy, one left alone.
"""

from __future__ import annotations

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
    status,
    stop_on_panel,
)
from tests.browser import wait_until as wait

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test

__all__ = ["chromium"]
AUTO_LOCK_S = 5
PIN = "2580"


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("panel-session-lock")
    quiet = quiet_wav(tmp / "quiet.wav", seed=3)
    port = free_port()
    cfg = panel_config(tmp, quiet, port, models_dir=None, extra=f"auto_lock_s = {AUTO_LOCK_S}\n")
    with panel_daemon(cfg, port) as (daemon, base):
        yield daemon, base, tmp


def in_view(page, selector: str) -> bool:
    """The element is on screen, inside the viewport (no scrolling needed)."""
    box = page.locator(selector).bounding_box()
    vp = page.viewport_size
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= vp["height"] \
        and box["x"] >= 0 and box["x"] + box["width"] <= vp["width"]


def test_activity_in_one_browser_does_not_keep_another_unlocked(chromium, panel):
    _, base, _ = panel
    kiosk = new_page(chromium, "800x480")
    set_pin_via_first_run(kiosk, base, PIN)
    laptop = new_page(chromium, "720x1280")
    laptop.goto(base + "/history")
    enter_pin(laptop, PIN)
    laptop.wait_for_url(base + "/history")
    kiosk.goto(base + "/history")
    assert "/unlock" not in kiosk.url
    # The laptop keeps busy for twice the auto-lock time; nobody touches the kiosk.
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2 * AUTO_LOCK_S:
        laptop.click("#nav-settings")
        laptop.wait_for_url(base + "/settings")
        laptop.click("#nav-history")
        laptop.wait_for_url(base + "/history")
    kiosk.wait_for_url(base + "/", timeout=5000)  # the kiosk went back to Start
    kiosk.goto(base + "/history")
    assert "/unlock" in kiosk.url  # and the server locked it, despite the laptop's requests
    laptop.goto(base + "/settings")
    assert laptop.url == base + "/settings"  # the busy browser is still unlocked
    kiosk.context.close()
    laptop.context.close()


def test_the_recording_screen_stays_up_when_the_panel_locks(chromium, panel):
    _, base, tmp = panel
    page = new_page(chromium, "800x480")
    page.goto(base + "/settings")
    enter_pin(page, PIN)
    page.wait_for_url(base + "/settings")
    page.goto(base + "/")
    page.fill("#name", "LOCK")
    page.click("#start")
    page.wait_for_url(base + "/visit")
    sid = status(base)["session_id"]
    assert page.locator("#nav-lock").is_visible()
    page.wait_for_timeout((AUTO_LOCK_S + 3) * 1000)  # nobody touches the panel
    assert page.url == base + "/visit"  # still the visit, not Start
    assert page.locator("#nav-lock").count() == 0  # no longer unlocked
    assert page.locator("#transcript").is_visible()
    for size in ("800x480", "720x1280"):
        w, h = size.split("x")
        page.set_viewport_size({"width": int(w), "height": int(h)})
        assert in_view(page, "#pause") and in_view(page, "#stop"), size
    shot(page, "visit-after-auto-lock", ("800x480", "720x1280"))
    page.set_viewport_size({"width": 800, "height": 480})
    # Pause and Stop still work from the locked screen.
    page.click("#pause")
    wait(lambda: status(base)["state"] == "paused", 5, "pause from the locked screen")
    page.wait_for_selector("#resume")
    assert page.url == base + "/visit"
    stop_on_panel(page)  # Stop, then "Yes, stop"
    page.wait_for_url(f"{base}/review/{sid}")  # the visit just stopped: its Review, without the PIN
    # What needs the PIN needs it again.
    page.goto(base + "/history")
    assert "/unlock" in page.url
    with open_store(str(tmp / "state" / "sessions.db")) as store:
        assert "panel:auto-lock" in [e.action for e in store.audit_events()]
    page.context.close()
