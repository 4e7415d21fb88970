"""The whole path for one long visit: room daemon + Mosquitto + clinic server, every part real.

A simulated visit of --minutes (default 10) — the bundled two-speaker recording played over and
over, 4 channels — is replayed in real time as the room's microphone (`appliance run`, default
models: Whisper tiny.en, Silero VAD, diarization), driven through the panel's HTTP endpoints.
Measured:
- the daemon's CPU share (its user+system CPU time / wall time while recording, 100 % = one
  core) and peak RSS (VmHWM);
- final-text latency at the panel's event stream: for every `segment` event, arrival time minus
  the moment its last word was played (visit start + the segment's end). The start is taken just
  before Start is posted, so the figure includes the capture's start-up (slightly pessimistic);
- Send → note: from Send on Review to the SOAP note on Review (built-in generator).

    .venv/bin/python -m benchmarks.e2e [--minutes 10] [--models-dir models] [--tier pi4|pi5|jetson]

With --tier the room runs what `appliance models install --tier` sets up (its models must be
installed in --models-dir): e.g. Moonshine with beam search on a Pi 5.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from appliance.demo import bundled_recording, stack
from appliance.demo.panel_client import PanelClient
from appliance.demo.run import TEMPLATE, _replayed

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def long_visit(out: Path, minutes: float) -> float:
    """The bundled visit repeated to at least `minutes`; its duration in seconds."""
    one, rate = sf.read(bundled_recording(), dtype="int16")
    reps = int(np.ceil(minutes * 60 * rate / one.shape[0]))
    sf.write(out, np.concatenate([one] * reps), rate, format="FLAC", subtype="PCM_16")
    return reps * one.shape[0] / rate


def tier_asr(name: str) -> str:
    """The [asr] lines a tier's room runs ("" for the defaults)."""
    if not name:
        return ""
    from appliance.models.catalog import get_tier, tier_engine

    t = get_tier(name)
    return (f'engine = "{tier_engine(t)}"\nmodel = "{t.asr_model}"\nthreads = {t.threads}\n'
            f'refine_model = "{t.refine_model}"\n')


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--models-dir", default="models")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, stores)")
    ap.add_argument("--tier", default="", help="run the [asr] settings of this model tier (docs/speech.md)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    running = stack.Stack(work, "room-bench")
    try:
        audio = work / "visit.flac"
        duration = long_visit(audio, args.minutes)
        stack.start_stack(running, Path(args.models_dir).resolve(), audio, realtime=True, asr=tier_asr(args.tier))
        measure(running, duration)
    finally:
        running.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def measure(running: stack.Stack, duration: float) -> None:
    panel = PanelClient(running.panel)
    pid = running.daemon.pid
    assert pid is not None
    latencies: list[float] = []

    def listen(stream_pass: str) -> None:
        try:
            for kind, data in panel.events(stream_pass):
                if kind == "segment" and "end" in data:
                    latencies.append(time.monotonic() - (t_start + float(data["end"])))
        except OSError:
            pass

    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    t_start = time.monotonic()
    panel.start("BENCH", [TEMPLATE])
    threading.Thread(target=listen, args=(panel.recording_screen(),), daemon=True).start()
    while not _replayed(panel.status()):
        if not running.daemon.alive():
            raise RuntimeError(f"the daemon exited:\n{running.daemon.tail()}")
        time.sleep(0.5)
    cpu, wall = cpu_seconds(pid) - cpu0, time.monotonic() - wall0
    lines_live = len(latencies)
    session_id = panel.stop()
    panel.send(session_id)
    t_send = time.monotonic()
    while TEMPLATE not in panel.review(session_id).notes:
        if time.monotonic() - t_send > 600:
            raise TimeoutError("no note on the panel 600 s after Send")
        time.sleep(0.1)
    to_note = time.monotonic() - t_send
    rows = [
        ("visit replayed in real time", f"{duration / 60:.1f} min ({wall:.0f} s wall)"),
        ("daemon CPU share (100 % = one core)", f"{100 * cpu / wall:.1f} %"),
        ("daemon peak RSS", f"{peak_rss_mb(pid):.0f} MB"),
        ("final lines on the event stream", f"{lines_live}"),
        ("final-text latency p50 / p95", f"{pct(latencies, 50):.2f} s / {pct(latencies, 95):.2f} s"),
        ("Send → SOAP note on the panel", f"{to_note:.2f} s"),
        ("machine load (1 min) at the end", f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'whole path':<{width}}  figure\n{'-' * width}  ------")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
