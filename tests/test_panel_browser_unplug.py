"""An unplugged microphone on the Recording screen, end to end, through the real PortAudio path.

The daemon records with PortAudio (PyAudio → ALSA "pulse" device) from a private PulseAudio
whose "room" null sink stands in for the microphone (tests/pulse.py); speech is played into
it with paplay. Unloading the sink is the unplug: the panel must say so within a few seconds,
recover when the sink comes back, and the visit must keep its lines from before and after.
Recognition is timing-only here (what is tested is the microphone path, not the words).
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import soundfile as sf

from tests.browser import chromium, free_port, new_page, panel_config, panel_daemon, shot, status, stop_on_panel
from tests.browser import wait_until as wait
from tests.pulse import ROOM_CHANNELS, ROOM_RATE, pulse_server
from tests.speech import RATE, dialogue

__all__ = ["chromium"]
pytestmark = [pytest.mark.portaudio, pytest.mark.slow]


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("panel-unplug")
    speech, _ = dialogue(["Good morning, what brings you in today?", "I have had a cough for a week."], gap_s=1.0)
    sf.write(tmp / "speech.wav", speech, RATE, subtype="PCM_16")
    port = free_port()
    # The room's real format is asked for explicitly (the ALSA "pulse" device advertises 32 channels).
    capture = (f'source = "portaudio"\ndevice = "PULSE"\nsample_rate = {ROOM_RATE}\nchannels = {ROOM_CHANNELS}\n'
               "reconnect_seconds = 0.5\n")
    with pulse_server() as pulse:  # sets PULSE_SERVER etc. in os.environ: the daemon inherits them
        cfg = panel_config(tmp, None, port, models_dir=None, capture=capture,
                           extra="auto_lock_s = 900\n[diarize]\nenabled = false")
        with panel_daemon(cfg, port) as (daemon, base):
            yield pulse, daemon, base, tmp


def lines(page) -> list[float]:
    return page.eval_on_selector_all("#transcript .seg", "els => els.map(e => parseFloat(e.dataset.start))")


def test_an_unplugged_microphone_is_shown_and_the_visit_survives_it(chromium, room):
    pulse, daemon, base, tmp = room
    page = new_page(chromium, "800x480")
    page.goto(base + "/")
    page.fill("#name", "U.P.")
    page.click("#start")
    page.wait_for_url(base + "/visit")
    sid = status(base)["session_id"]
    wait(lambda: (status(base)["capture"] or {}).get("state") == "ok", 10, "the microphone open")
    assert pulse.recording_streams() == 1  # the daemon really reads the PulseAudio source

    pulse.play(tmp / "speech.wav")
    wait(lambda: len(lines(page)) >= 2, 20, "lines before the unplug")
    before = lines(page)
    assert page.locator("#meter").evaluate("e => parseFloat(e.style.width)") >= 0

    t0 = time.monotonic()
    pulse.unload_room()
    msg = page.locator("#mic-msg")
    wait(lambda: "unplugged" in msg.inner_text().lower(), 5, "the unplugged message")
    print(f"unplug shown after {time.monotonic() - t0:.1f} s")
    assert "warn" in (msg.get_attribute("class") or "")
    assert page.inner_text("#rec-state-text") == "RECORDING"  # the visit goes on, waiting for the microphone
    st = status(base)
    assert st["session_id"] == sid and st["state"] == "recording" and st["capture"]["state"] == "unplugged"
    shot(page, "visit-unplugged")

    pulse.load_room()
    wait(lambda: "unplugged" not in msg.inner_text().lower(), 10, "the message cleared after the replug")
    assert status(base)["capture"]["state"] == "ok"
    replugged_at = status(base)["elapsed_s"]
    wait(lambda: pulse.recording_streams() == 1, 5, "the stream reopened")
    pulse.play(tmp / "speech.wav")
    wait(lambda: len(lines(page)) >= len(before) + 2, 20, "lines after the replug")
    after = [t for t in lines(page) if t >= replugged_at - 0.5]
    assert len(after) >= 2, (before, lines(page))

    stop_on_panel(page)
    page.wait_for_url(re.compile(rf".*/review/{sid}$"))
    starts = page.eval_on_selector_all("article.seg", "els => els.map(e => parseFloat(e.dataset.start))")
    assert len(starts) >= len(before) + 2 and starts == sorted(starts)
    assert min(starts) < replugged_at < max(starts)  # one visit, lines from both sides of the unplug
    assert np.all(np.diff(starts) > 0)
    assert daemon.proc is not None and daemon.proc.poll() is None  # the daemon never stopped
    page.context.close()
