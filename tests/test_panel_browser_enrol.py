"""Clinician voice enrolment round trip on the panel in Chromium, with the real models.

Settings (PIN) → microphone test (the meter follows the replayed voice) → Record my voice:
the daemon records 20 s of one speaker from its capture and keeps only the voice print →
the daemon restarts with another "room" (the capture replays one file, so the visit needs a
second daemon; the print lives in the state directory and must survive the restart) → a
visit with the enrolled voice and another voice is labelled Clinician and Patient, live and
on Review. Voices: espeak-ng female (the clinician) and male (the patient), which the
speaker model tells apart (tests/test_diarize_voices.py).
"""

from __future__ import annotations

import json
import re
import signal
import stat

import numpy as np
import pytest
import soundfile as sf

from tests.browser import (
    chromium,
    enter_pin,
    free_port,
    in_view,
    new_page,
    panel_config,
    panel_daemon,
    set_pin_via_first_run,
    shot,
    status,
    stop_on_panel,
)
from tests.browser import wait_until as wait
from tests.daemon import PHRASES, installed_models_dir
from tests.speech import RATE, espeak

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test

__all__ = ["chromium"]
PIN = "4826"
CLINICIAN_VOICE, PATIENT_VOICE = "en+f3", "en-us"
READING = [  # what the clinician reads to enrol; none of it is said in the visit
    "The north wind and the sun were disputing which was the stronger, when a traveler came along.",
    "They agreed that the one who first made the traveler take off his cloak should be considered stronger.",
    "Then the north wind blew as hard as he could, but the more he blew the closer the traveler held his cloak.",
    "At last the north wind gave up the attempt. Then the sun shone out warmly, and the traveler took it off.",
    "And so the north wind was obliged to confess that the sun was the stronger of the two.",
]
METER_JS = """() => { window.meter = [];
  new MutationObserver(() => window.meter.push(parseFloat(document.getElementById('meter').style.width) || 0))
    .observe(document.getElementById('meter'), {attributes: true}); }"""


Truth = list[tuple[float, float, str]]


def voices(phrases: list[tuple[str, str]], gap_s: float, seed: int) -> tuple[np.ndarray, Truth]:
    """(voice, text) phrases with silence between them and faint room noise; true (start, end, voice)."""
    rng = np.random.default_rng(seed)
    gap = np.zeros(int(gap_s * RATE), np.float32)
    parts, truth, t = [gap], [], gap_s
    for voice, text in phrases:
        speech = espeak(text, voice)
        nz = np.flatnonzero(np.abs(speech) > 1e-3)
        truth.append((t + nz[0] / RATE, t + nz[-1] / RATE, voice))
        parts += [speech, gap]
        t += (speech.size + gap.size) / RATE
    audio = np.concatenate(parts)
    return audio + rng.normal(0, 1e-3, audio.size).astype(np.float32), truth


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    models = installed_models_dir("voicefilter-embedder") and installed_models_dir()
    tmp = tmp_path_factory.mktemp("panel-enrol")
    reading, _ = voices([(CLINICIAN_VOICE, t) for t in READING], 0.3, seed=1)
    sf.write(tmp / "clinician-alone.wav", reading, RATE, subtype="PCM_16")
    visit, truth = voices([(CLINICIAN_VOICE if i % 2 == 0 else PATIENT_VOICE, t) for i, t in enumerate(PHRASES)],
                          1.0, seed=2)
    sf.write(tmp / "visit.wav", visit, RATE, subtype="PCM_16")
    return tmp, models, truth, visit.size / RATE


def labelled(page, selector: str) -> list[tuple[float, float, str, str]]:
    """(start, end, label, shown name) of each transcript line."""
    return page.eval_on_selector_all(selector, """els => els.map(e => [parseFloat(e.dataset.start),
        parseFloat(e.dataset.end), e.dataset.speaker, e.querySelector('.spk').textContent.trim()])""")


def voice_of(start: float, end: float, truth: list[tuple[float, float, str]]) -> str | None:
    """The voice that speaks most within [start, end]."""
    overlap = {v: 0.0 for *_, v in truth}
    for s, e, v in truth:
        overlap[v] += max(0.0, min(end, e) - max(start, s))
    best = max(overlap, key=overlap.__getitem__)
    return best if overlap[best] > 0 else None


def agreement(lines: list[tuple[float, float, str, str]], truth) -> float:
    want = {CLINICIAN_VOICE: "Clinician", PATIENT_VOICE: "Patient"}
    judged = [(want[v], name) for s, e, _, name in lines if (v := voice_of(s, e, truth))]
    return sum(a == b for a, b in judged) / max(1, len(judged))


def test_enrol_on_the_panel_then_a_visit_is_labelled_clinician_and_patient(chromium, room):
    tmp, models, truth, visit_s = room
    state = tmp / "state"
    port = free_port()
    cfg = panel_config(tmp, tmp / "clinician-alone.wav", port, models_dir=models,
                       extra="auto_lock_s = 900\nenrol_seconds = 20\nmic_test_seconds = 6")
    with panel_daemon(cfg, port) as (daemon, base):
        page = new_page(chromium, "1280x800")
        set_pin_via_first_run(page, base, PIN, "/settings")
        assert page.inner_text("#enrol-state") == "No clinician voice is enrolled yet."

        # Microphone test: the meter follows the replayed voice (speech and the pauses between sentences).
        page.click("#mic-test")
        page.wait_for_url(base + "/settings#mic")
        page.evaluate(METER_JS)
        wait(lambda: "Speak: the bar should move" in page.inner_text("#tool-msg"), 10, "the test running")
        wait(lambda: page.inner_text("#tool-msg") == "Microphone test finished.", 20, "the end of the test")
        seen = page.evaluate("window.meter")
        moving = [w for w in seen if w > 0]
        assert len(moving) >= 4 and max(moving) > 40 and max(moving) - min(moving) > 5, seen
        assert seen[-1] == 0  # back to rest when the test is over
        shot(page, "settings-mic-test", ("800x480",))

        # Enrolment: 20 s of the clinician alone, from the daemon's own capture. On the 7" screen its
        # progress shows in its own card, where the page scrolled to, not in the microphone card above.
        page.set_viewport_size({"width": 800, "height": 480})
        page.fill("#clinician", "Dr Rivera")
        page.click("#enrol-btn")
        page.wait_for_url(base + "/settings#enrol")
        wait(lambda: "Please read aloud now" in page.inner_text("#enrol-msg"), 10, "enrolment recording")
        assert in_view(page, "#enrol-msg")
        assert "read aloud" not in page.inner_text("#tool-msg")
        wait(lambda: "Voice enrolled for Dr Rivera" in page.inner_text("#enrol-msg"), 90, "the voice print")
        assert "Only the voice print was kept" in page.inner_text("#enrol-msg") and in_view(page, "#enrol-msg")
        assert status(base)["tools"]["result"] == "ok"
        page.reload()
        assert page.inner_text("#enrol-state").startswith("Enrolled: Dr Rivera (")
        shot(page, "settings-enrolled", ("800x480", "720x1280"))
        page.context.close()
        daemon.kill(signal.SIGTERM)

    # Only the print was written (format, name, date, model, 256 numbers), readable by the service user only.
    print_file = state / "enrolment" / "clinician.json"
    assert [p.name for p in print_file.parent.iterdir()] == ["clinician.json"]
    assert stat.S_IMODE(print_file.stat().st_mode) == 0o600
    saved = json.loads(print_file.read_text())
    assert saved["clinician"] == "Dr Rivera" and saved["model"] and len(saved["vector"]) == saved["dim"]
    assert print_file.stat().st_size < 8_000  # 20 s of 16-bit audio would be 640 kB

    # The same device, restarted, now in a visit: the clinician (enrolled voice) and a patient.
    port = free_port()
    cfg = panel_config(tmp, tmp / "visit.wav", port, models_dir=models, extra="auto_lock_s = 900")
    with panel_daemon(cfg, port) as (daemon, base):
        page = new_page(chromium, "1280x800")
        page.goto(base + "/settings")
        enter_pin(page, PIN)
        page.wait_for_url(base + "/settings")
        assert page.inner_text("#enrol-state").startswith("Enrolled: Dr Rivera (")  # survived the restart

        page.goto(base + "/")
        page.fill("#name", "P.T.")
        page.check("#consent")
        page.click("#start")
        page.wait_for_url(base + "/visit")
        wait(lambda: status(base)["elapsed_s"] >= visit_s, visit_s + 30, "the whole visit replayed")
        wait(lambda: status(base)["pending_s"] == 0, 60, "recognition to catch up")
        page.wait_for_timeout(1500)  # the next status tick renames the lines
        live = labelled(page, "#transcript .seg")
        names = {name for *_, name in live}
        assert {"Clinician", "Patient"} <= names, live
        assert not any(re.fullmatch(r"Speaker \d", n) for n in names), live
        live_ok = agreement(live, truth)
        assert live_ok >= 0.75, (live_ok, live)
        shot(page, "visit-enrolled")

        stop_on_panel(page)
        page.wait_for_url(re.compile(r".*/review/[0-9a-f-]+$"), timeout=120_000)
        review = labelled(page, "article.seg")
        assert len(review) >= len(PHRASES) - 2, review
        assert {name for *_, name in review} == {"Clinician", "Patient"}, review
        review_ok = agreement(review, truth)
        assert review_ok >= 0.85, (review_ok, review)
        print(f"labels right: live {live_ok:.0%}, review {review_ok:.0%} of {len(review)} lines")
        shot(page, "review-enrolled")
        page.context.close()
