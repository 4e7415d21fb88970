"""A bad enrolment sample is refused on the panel with a sentence saying what to do.

The daemon's capture replays the panel's reading text spoken by two espeak-ng voices in
turn (a colleague reading along): Record my voice ends with the refusal, the enrolment
state still says nobody is enrolled, and no voice print is written.
"""

from __future__ import annotations

import pytest
import soundfile as sf

from tests.browser import chromium, free_port, new_page, panel_config, panel_daemon, set_pin_via_first_run, status
from tests.browser import wait_until as wait
from tests.daemon import installed_models_dir
from tests.speech import RATE
from tests.test_panel_browser_enrol import CLINICIAN_VOICE, PATIENT_VOICE, READING, voices

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test

__all__ = ["chromium"]


def test_two_voices_in_the_enrolment_are_refused_with_a_plain_sentence(chromium, tmp_path):
    models = installed_models_dir("voicefilter-embedder") and installed_models_dir()
    two, _ = voices([(CLINICIAN_VOICE if i % 2 == 0 else PATIENT_VOICE, t) for i, t in enumerate(READING)],
                    0.3, seed=3)
    sf.write(tmp_path / "two-voices.wav", two, RATE, subtype="PCM_16")
    port = free_port()
    cfg = panel_config(tmp_path, tmp_path / "two-voices.wav", port, models_dir=models,
                       extra="auto_lock_s = 900\nenrol_seconds = 20")
    with panel_daemon(cfg, port) as (_daemon, base):
        page = new_page(chromium, "800x480")
        set_pin_via_first_run(page, base, "4826", "/settings")
        page.fill("#clinician", "Dr Rivera")
        page.click("#enrol-btn")
        page.wait_for_url(base + "/settings#enrol")
        wait(lambda: status(base)["tools"].get("result") == "error", 90, "the enrolment to finish")
        page.reload()
        msg = page.inner_text("#enrol-msg")
        assert msg == ("More than one voice seems to be in the recording. Please enrol alone, with nobody "
                       "else talking, and try again."), msg
        assert page.inner_text("#enrol-state") == "No clinician voice is enrolled yet."
        page.context.close()
    assert not (tmp_path / "state" / "enrolment" / "clinician.json").exists()
