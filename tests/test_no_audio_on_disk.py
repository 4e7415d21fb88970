"""Privacy: a recorded visit leaves no audio anywhere under the state and temp directories.

The daemon runs as a real process with TMPDIR and its state directory pointed into the
test's folders; after a whole visit (start, pause, resume, stop) every file there is
searched for the visit's samples in every encoding the pipeline holds them in (int16
PCM, float32, float64) and for audio container headers. A positive control proves the
search finds audio when it is there.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.daemon import DaemonProcess, free_port, installed_models_dir, write_config, write_visit_wav

pytestmark = pytest.mark.slow

MAGIC = (b"RIFF", b"fLaC", b"OggS", b"FORM")
PROBE_SAMPLES = 24  # 24 consecutive samples: no accidental match in text or SQLite pages


def probes(pcm: np.ndarray, n: int = 40) -> list[bytes]:
    """Byte patterns of loud stretches of the visit, in each in-memory representation."""
    loud = np.flatnonzero(np.abs(pcm) > 0.05)
    picks = loud[np.linspace(0, loud.size - PROBE_SAMPLES - 1, n).astype(int)]
    out = []
    for i in picks:
        window = pcm[i:i + PROBE_SAMPLES]
        out.append(np.round(window * 32768).astype("<i2").tobytes())
        out.append(window.astype("<f4").tobytes())
        out.append(window.astype("<f8").tobytes())
    return out


def audio_found(root: Path, patterns: list[bytes]) -> list[str]:
    hits = []
    for f in root.rglob("*"):
        if not f.is_file() or f.is_symlink():
            continue
        data = f.read_bytes()
        if any(data.startswith(m) for m in MAGIC):
            hits.append(f"{f}: audio container header")
        hits += [f"{f}: samples at byte {data.find(p)}" for p in patterns if p in data]
    return hits


def test_recorded_visit_writes_no_audio(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    wav = src / "visit.wav"  # the input file itself lives outside the searched folders
    pcm, _ = write_visit_wav(wav)
    run = tmp_path / "run"
    (run / "tmp").mkdir(parents=True)
    # the panel runs too: nothing it serves or caches may hold audio either
    cfg = write_config(run, wav, extra=f"[panel]\nport = {free_port()}\n")
    with DaemonProcess(cfg, env={"TMPDIR": str(run / "tmp"), "HOME": str(run)}) as d:
        assert d.ctl("start", name="XY")["ok"]
        d.wait_for(lambda s: s["segments"] >= 2, timeout=30, what="two segments")
        assert d.ctl("pause")["ok"]
        assert d.ctl("resume")["ok"]
        d.wait_for(lambda s: s["segments"] >= 4, timeout=30, what="four segments")
        assert d.ctl("stop")["ok"]
    stored = list(run.rglob("*"))
    assert any(p.name == "sessions.db" for p in stored)  # the visit really was stored here
    assert audio_found(run, probes(pcm)) == []


def test_the_search_finds_audio_when_it_is_there(tmp_path):
    pcm = np.sin(np.linspace(0, 2000, 32000)).astype(np.float32) * 0.5
    (tmp_path / "leak.raw").write_bytes(pcm[5000:9000].astype("<f4").tobytes())
    assert audio_found(tmp_path, probes(pcm[5000:9000], n=5))
    sf.write(tmp_path / "leak.wav", pcm, 16000)
    assert any("header" in h for h in audio_found(tmp_path, []))


def test_the_refined_pass_writes_no_audio(tmp_path):
    """Real recognition with the refined pass on: its RAM buffer of each utterance's audio never
    reaches a file, before or after it hands its text over."""
    models = installed_models_dir("whisper-tiny.en")
    src = tmp_path / "src"
    src.mkdir()
    wav = src / "visit.wav"
    pcm, _ = write_visit_wav(wav)
    run = tmp_path / "run"
    (run / "tmp").mkdir(parents=True)
    cfg = write_config(run, wav, realtime=False, models_dir=models,
                       asr='engine = "whisper-onnx"\nrefine_model = "whisper-tiny.en"\nrefine_window_s = 10\n')
    with DaemonProcess(cfg, env={"TMPDIR": str(run / "tmp"), "HOME": str(run)}) as d:
        assert d.ctl("start", name="XY")["ok"]
        d.wait_for(lambda s: s["segments"] >= 4, timeout=60, what="four segments")
        assert audio_found(run, probes(pcm)) == []  # while the pass holds the visit's audio in RAM
        assert d.ctl("stop")["ok"]
        deadline = time.monotonic() + 60
        while "refined pass done" not in d.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "refined pass done" in d.log.read_text()
        refine = d.status()["refine"]  # what IT sees in `appliance ctl status`
        assert refine["windows"] >= 1 and refine["waiting_s"] == 0 and refine["let_go"] == 0, refine
        assert audio_found(run, probes(pcm)) == []
    assert audio_found(run, probes(pcm)) == []
