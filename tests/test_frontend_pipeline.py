"""The front end in the speech pipeline: finals are decoded from the beam, on the bundled 4-channel
demo recording (its array given as a clinic's own geometry file), and no audio reaches the disk."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import soundfile as sf

from appliance.asr.engine import NoVisitContext, Recognition
from appliance.asr.registry import Abilities
from appliance.asr.whisper import WhisperOnnx
from appliance.capture.blocks import CapturedBlock
from appliance.config.loader import parse_config
from appliance.config.schema import ApplianceConfig, AsrConfig
from appliance.demo import bundled_recording
from appliance.frontend import ArrayFrontEnd
from appliance.hardware.arrays import load_geometry
from appliance.speech.offline import transcribe_file
from appliance.speech.pipeline import FinalSegment, SpeechPipeline
from appliance.vad import EnergySegmenter
from tests import asr_model
from tests.daemon import DaemonProcess, write_config
from tests.test_no_audio_on_disk import audio_found, probes

pytestmark = pytest.mark.slow
whisper_model_dir = asr_model.whisper_model_dir  # the shared session fixture

# scripts/make_demo_recording.py: four mics 90 degrees apart on a 32.3 mm radius, the first at 45 degrees
DEMO_GEOMETRY = """name = "demo recording's circle"
positions_m = [[0.02284, 0.02284], [-0.02284, 0.02284], [-0.02284, -0.02284], [0.02284, -0.02284]]
"""
WORDS = ("sore", "throat", "fever", "cough", "swallowing", "ibuprofen", "strep", "fluids")


def demo_config(tmp_path, frontend: str, **extra: dict) -> ApplianceConfig:
    arrays = tmp_path / "arrays"
    arrays.mkdir(exist_ok=True)
    (arrays / "demo-circle.toml").write_text(DEMO_GEOMETRY)
    return parse_config({"paths": {"state_dir": str(tmp_path / "state")}, "vad": {"engine": "energy"},
                         "diarize": {"enabled": False},
                         "capture": {"frontend": frontend, "array": "demo-circle", "arrays_dir": str(arrays)},
                         **extra})


@pytest.fixture(scope="module")
def engine(whisper_model_dir) -> WhisperOnnx:
    return WhisperOnnx(whisper_model_dir, AsrConfig())


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@pytest.mark.parametrize("frontend", ["mvdr", "wpe+mvdr"])
def test_the_demo_visit_is_transcribed_from_the_beam(tmp_path, engine, frontend):
    cfg = demo_config(tmp_path, frontend)
    result = transcribe_file(cfg, engine, str(bundled_recording()))
    text = " ".join(s.text for s in result.segments)
    assert len(result.segments) >= 8
    assert len(words(text) & set(WORDS)) >= 6, text


class HeardEngine(NoVisitContext):
    """Records what each final decoded (its stream's audio), then decodes nothing: the pipeline's
    choice of audio is what is under test."""

    name = "heard"
    abilities = Abilities(offline=False, vocabulary=False, visit_context=False)

    def __init__(self) -> None:
        self.heard: list[np.ndarray] = []

    def new_stream(self, start_s: float | None = None) -> HeardStream:
        return HeardStream(self)


class HeardStream:
    def __init__(self, engine: HeardEngine) -> None:
        self.engine, self.parts = engine, []

    def accept(self, samples: np.ndarray) -> None:
        self.parts.append(np.array(samples, np.float32))

    def partial(self) -> str:
        return ""

    def cancel(self) -> None:
        pass

    def finish(self) -> Recognition:
        self.engine.heard.append(np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32))
        return Recognition(text="words")


def test_finals_hear_the_front_end_and_partials_the_mix(tmp_path):
    raw, rate = sf.read(bundled_recording(), dtype="float32", always_2d=True)
    array = load_geometry(_geometry(tmp_path))
    frontend = ArrayFrontEnd("mvdr")
    frontend.set_array(array)
    engine = HeardEngine()
    segments: list[FinalSegment] = []
    pipeline = SpeechPipeline(EnergySegmenter(demo_config(tmp_path, "mvdr").vad), engine, segments.append,
                              frontend=frontend)
    stop = threading.Event()
    worker = threading.Thread(target=pipeline.run, args=(stop,), daemon=True)
    worker.start()
    pipeline.begin("visit", 0.0)
    block = 512
    for i in range(0, len(raw), block):
        chunk = raw[i:i + block]
        pipeline.feed(CapturedBlock(raw=chunk, rate=rate, mono16k=chunk.mean(axis=1), t=i / rate))
        while pipeline.queued_seconds() > 0:  # as a file replay does: the ring holds what waits
            threading.Event().wait(0.005)
    pipeline.end_utterance()
    assert pipeline.drain(60)
    stop.set()
    worker.join(5)

    assert len(segments) >= 8 and frontend.stats.enhanced >= len(segments) and frontend.stats.fallbacks == 0
    for seg, audio in zip(segments, engine.heard, strict=True):
        mono = raw[round(seg.start * rate):round(seg.end * rate)].mean(axis=1)
        assert abs(audio.size - mono.size) <= 1
        n = min(audio.size, mono.size)
        assert not np.allclose(audio[:n], mono[:n], atol=1e-3)  # not the mix …
        assert np.corrcoef(audio[:n], mono[:n])[0, 1] > 0.8  # … but the same speech
    # the visit is over and nothing waits: the raw channels are no longer held
    assert frontend.enhance(segments[-1].start, segments[-1].end) is None


def _geometry(tmp_path):
    path = tmp_path / "demo-circle.toml"
    path.write_text(DEMO_GEOMETRY)
    return path


def test_a_visit_with_the_front_end_writes_no_audio(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    wav = src / "visit.wav"  # the input itself lives outside the searched folders
    raw, rate = sf.read(bundled_recording(), dtype="float32", always_2d=True)
    sf.write(wav, raw[: rate * 30], rate, subtype="PCM_16")
    pcm, _ = sf.read(wav, dtype="float32", always_2d=True)
    run = tmp_path / "run"
    (run / "tmp").mkdir(parents=True)
    extra = f'[capture]\nfrontend = "wpe+mvdr"\narray = "{_geometry(src)}"\n'
    cfg = write_config(run, wav, realtime=False, extra="")
    cfg.write_text(cfg.read_text().replace("[capture]\n", extra, 1))
    with DaemonProcess(cfg, env={"TMPDIR": str(run / "tmp"), "HOME": str(run)}) as d:
        assert d.ctl("start", name="XY")["ok"]
        d.wait_for(lambda s: s["segments"] >= 3, timeout=60, what="three segments")
        assert d.ctl("stop")["ok"]
    log = d.log.read_text()
    assert "recognition hears the wpe+mvdr beam" in log, log[-2000:]
    assert any(p.name == "sessions.db" for p in run.rglob("*"))
    patterns = [p for m in range(pcm.shape[1]) for p in probes(pcm[:, m])] + probes(pcm.mean(axis=1))
    assert audio_found(run, patterns) == []
