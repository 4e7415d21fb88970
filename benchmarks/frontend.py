"""Front end benchmark: WER (deletions and substitutions apart) on the simulated far-field rooms
for capture.frontend = none / mvdr / wpe+mvdr, and the front end's CPU time per audio second.

    python -m benchmarks.frontend [--dev N] [--test N] [--model whisper-tiny.en] [--refine MODEL] [--modes none,…]

With --refine, each room is also given the refined pass (asr.refine_model = MODEL: ~30 s windows of
joined speech decoded again behind the live text, as the daemon does) and a "refined" row follows
each live one; RTF then counts both passes.

Rooms (`benchmarks/rooms.py`): the `dev` split (ACI-Bench train dialogues, dev voices and seeds)
is what the front end's settings were chosen on; the `test` split (valid dialogues, other voices,
other rooms) was not looked at while choosing them. Every room is replayed through the room
daemon's own pipeline (`transcribe_file`: capture → VAD → front end → recognition), mono mix =
the firmware's channel 0 (the mean of the four microphones). CPU per audio second: the front end
alone at 1 thread (BLAS limited to one), on the utterances the VAD found, thread CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("none", "mvdr", "wpe+mvdr")
ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def worker(args: argparse.Namespace) -> None:
    """One mode over every room file: texts, recognition wall time, the front end's CPU cost."""
    from appliance.asr.factory import engine_for_model, make_engine
    from appliance.config.schema import (
        ApplianceConfig,
        AsrConfig,
        CaptureConfig,
        DiarizeConfig,
        PathsConfig,
        VadConfig,
    )
    from appliance.speech.engines import refiner_engine
    from appliance.speech.offline import transcribe_file

    cfg = ApplianceConfig(paths=PathsConfig(models_dir=args.models_dir), vad=VadConfig(engine="silero"),
                          diarize=DiarizeConfig(enabled=False),
                          capture=CaptureConfig(asr_channels=(0,), array="respeaker-usb-4mic", frontend=args.mode))
    asr = AsrConfig(engine=engine_for_model(args.models_dir, args.model), model=args.model, threads=1)
    engine = make_engine(asr, args.models_dir)
    # Built as the daemon builds it (sharing the live model when it is the same one, else with the
    # engine the refined model was made for).
    refiner = refiner_engine(replace(cfg, asr=replace(asr, refine_model=args.refine)), engine)
    out = []
    for f in json.loads(args.files):
        t0 = time.perf_counter()
        result = transcribe_file(cfg, engine, f, refiner=refiner)
        wall = time.perf_counter() - t0
        spans = [(s.start, s.end) for s in result.segments]
        cpu, audio_s = frontend_cost(f, args.mode, spans) if args.mode != "none" else (0.0, 0.0)
        out.append({"file": f, "text": " ".join(s.text for s in result.segments), "audio_s": result.duration_s,
                    "refined_text": " ".join(s.text for s in result.refined or result.segments),
                    "wall_s": wall, "frontend_cpu_s": cpu, "frontend_audio_s": audio_s})
    print(json.dumps(out))


def frontend_cost(path: str, mode: str, spans: list[tuple[float, float]]) -> tuple[float, float]:
    """CPU seconds the front end spends on ``spans`` of the recording, and their audio seconds."""
    import soundfile as sf

    from appliance.frontend import ArrayFrontEnd
    from appliance.hardware.arrays import RESPEAKER_USB_4MIC_V2

    raw, rate = sf.read(path, dtype="float32", always_2d=True)
    front = ArrayFrontEnd(mode, keep_s=raw.shape[0] / rate + 1)
    front.set_array(RESPEAKER_USB_4MIC_V2)
    front.feed(raw, rate, 0.0)
    for start, end in spans:
        front.enhance(start, end)
    return front.stats.cpu_s, front.stats.audio_s


def run_worker(mode: str, files: list[str], models_dir: str, model: str, refine: str) -> list[dict]:
    cmd = [sys.executable, "-m", "benchmarks.frontend", "--worker", "--mode", mode, "--files", json.dumps(files),
           "--models-dir", models_dir, "--model", model, "--refine", refine]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False, env={**os.environ, **ONE_THREAD})
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rooms(tmp: Path, split: str, n: int) -> list[tuple[str, str, str]]:
    """(label, wav path, reference) of the first ``n`` rooms of ``split``."""
    from benchmarks.rooms import build, room_specs

    out = []
    for spec in room_specs(split, quick=False)[:n]:
        room = build(spec, "train" if split == "dev" else "valid", tmp, max_turns=8)
        ref = " ".join(t.text for t in sorted(room.turns, key=lambda t: t.start))
        out.append((f"{spec.name[:24]} RT60 {room.rt60:.2f}", str(room.path), ref))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="none", help=argparse.SUPPRESS)
    p.add_argument("--files", help=argparse.SUPPRESS)
    p.add_argument("--models-dir", default=str(ROOT / "models"), help="installed models (appliance models install)")
    p.add_argument("--model", default="whisper-tiny.en", help="asr.model to recognise with")
    p.add_argument("--dev", type=int, default=2, help="dev-split rooms (settings were tuned on these)")
    p.add_argument("--test", type=int, default=3, help="test-split rooms (never used for tuning)")
    p.add_argument("--modes", default=",".join(MODES), help="front ends to run, comma-separated")
    p.add_argument("--refine", default="", help="also the refined pass with this model (asr.refine_model)")
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0

    from benchmarks.normalize import error_rates

    tmp = Path(tempfile.mkdtemp(prefix="frontend-bench-"))
    sets = [("dev", r) for r in rooms(tmp, "dev", args.dev)] + [("test", r) for r in rooms(tmp, "test", args.test)]
    files = [r[1] for _, r in sets]
    print(f"Front end benchmark: {args.model}, Silero VAD, 1 thread; load {os.getloadavg()[0]:.1f} on "
          f"{len(os.sched_getaffinity(0))} cores; {len(sets)} rooms, "
          f"{sum(_seconds(f) for f in files):.0f} s of audio\n")
    header = f"{'split':<5} {'room':<34} {'front end':<17} {'WER %':>6} {'del %':>6} {'sub %':>6} {'ins %':>6} " \
             f"{'RTF':>6} {'FE cpu/s':>8}"
    print(header)
    print("-" * len(header))
    modes = [m for m in MODES if m in args.modes.split(",")]
    results = {mode: run_worker(mode, files, args.models_dir, args.model, args.refine) for mode in modes}
    kinds = ("text", "refined_text") if args.refine else ("text",)
    for split in ("dev", "test"):
        picked = [i for i, (s, _) in enumerate(sets) if s == split]
        for mode in modes:
            for kind in kinds:
                label = mode if kind == "text" else f"{mode} refined"
                for i in picked:
                    print(_row(split, sets[i][1][0], label, [sets[i][1][2]], [results[mode][i]], error_rates, kind))
                if len(picked) > 1:
                    print(_row(split, "all rooms (pooled)", label, [sets[i][1][2] for i in picked],
                               [results[mode][i] for i in picked], error_rates, kind))
    return 0


def _seconds(path: str) -> float:
    import soundfile as sf

    return float(sf.info(path).duration)


def _row(split: str, label: str, mode: str, refs: list[str], res: list[dict], error_rates,  # type: ignore[no-untyped-def]
         kind: str = "text") -> str:
    rates = error_rates(refs, [r[kind] for r in res])
    rtf = sum(r["wall_s"] for r in res) / sum(r["audio_s"] for r in res)
    fe_audio = sum(r["frontend_audio_s"] for r in res)
    cost = f"{sum(r['frontend_cpu_s'] for r in res) / fe_audio:8.3f}" if fe_audio else f"{'-':>8}"
    pct = " ".join(f"{rates[k] * 100:6.1f}" for k in ("wer", "del", "sub", "ins"))
    return f"{split:<5} {label:<34} {mode:<17} {pct} {rtf:6.3f} {cost}"


if __name__ == "__main__":
    raise SystemExit(main())
