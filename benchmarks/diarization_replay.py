"""Calibrate the speaker labeller in seconds: rooms built and transcribed once, labellers replayed.

    python -m benchmarks.diarization_replay --split dev [--diarize KEY=NUMBER] [--detail LABELLER]

`benchmarks.diarization` rebuilds and transcribes every room on each run (~5 min a split).
This keeps, per split, each room's recording and the utterances the pipeline handed the
labeller (audio, start, end; in `--cache`, outside the checkout), then replays the four
labellers of `benchmarks.diarization` over them with the direction tracker fed from the
recording: same rooms, same scores, ~1 min a run. For choosing thresholds on `--split dev`;
report from `benchmarks.diarization` on `--split test`. The labeller's CPU time per second of
audio is printed too (thread time: the replay runs one labeller at a time).

``--detail LABELLER`` lists every reference turn, marking (!!) those whose words are shown
under the wrong role with the device's turns beside them: where to look when a figure moves.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import pickle  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.diarization import (  # noqa: E402
    VARIANTS,
    fed_tracker,
    flagged_spans,
    room_lines,
    score,
    segment_labels,
    table,
)
from benchmarks.rooms import Room, build, room_specs  # noqa: E402

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "exam-scribe" / "diarization-replay"


class Recorder:
    """Stands in for the labeller during the one transcription: keeps what it was handed."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, float, float]] = []

    def assign(self, audio16k, start, end, direction=None):  # type: ignore[no-untyped-def]
        self.calls.append((np.asarray(audio16k, np.float32).copy(), start, end))
        return []

    def recluster(self) -> dict[int, str]:
        return {}

    def display_names(self) -> dict[str, str]:
        return {}


def record(split: str, cache: Path, models_dir: str) -> list:
    """(room, utterances, transcript segments) per room of ``split``, transcribed once and cached."""
    path = cache / f"{split}.pkl"
    if path.exists():
        with path.open("rb") as f:
            return pickle.load(f)
    from appliance.asr.factory import make_engine
    from appliance.config.schema import ApplianceConfig, AsrConfig, CaptureConfig, PathsConfig
    from appliance.speech.offline import transcribe_file

    engine = make_engine(AsrConfig(engine="whisper-onnx", threads=os.cpu_count() or 1), models_dir)
    cfg = ApplianceConfig(paths=PathsConfig(models_dir=models_dir),
                          capture=CaptureConfig(asr_channels=(0,), array="respeaker-usb-4mic"))
    rooms = []
    for spec in room_specs(split, False):
        room = build(spec, "valid" if split == "test" else "train", cache / split)
        recorder = Recorder()
        result = transcribe_file(cfg, engine, str(room.path), realtime=False, diarizer=recorder)
        rooms.append((room, recorder.calls, [(s.start, s.end, s.text) for s in result.segments]))
        print(f"  recorded {room.name}: {len(recorder.calls)} utterances", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(rooms, f)
    return rooms


def replay(room: Room, calls: list, segments: list, embedder, overrides: dict) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    """The run dict `benchmarks.diarization.score` takes, and each labeller's turns and names."""
    from appliance.config.schema import DiarizeConfig
    from appliance.diarize import OnlineDiarizer, enrol

    tracker, enrolled = fed_tracker(room, keep_s=room.duration + 60)[0], enrol(room.enrolment, embedder)
    base = dataclasses.replace(DiarizeConfig(), **overrides)
    run = {"duration": room.duration, "asr_wall": 0.0, "tracker_wall": 0.0, "variants": {},
           "text": " ".join(text for _, _, text in segments)}
    kept = {}
    for name, (direction, enrolment) in VARIANTS.items():
        d = OnlineDiarizer(dataclasses.replace(base, use_direction=direction), embedder,
                           enrolled=enrolled if enrolment else None)
        c0 = time.thread_time()
        live = {round(start, 3): d.assign(audio, start, end, tracker.direction if direction else None)
                for audio, start, end in calls}
        d.recluster()
        cpu = time.thread_time() - c0
        run["variants"][name] = {"hyp": [(t.start, t.end, t.label) for t in d.turns], "names": d.display_names(),
                                 "segments": segment_labels(segments, live, d.turns), "flagged": flagged_spans(live),
                                 "wall": cpu, "cpu": cpu}
        kept[name] = (d.turns, d.display_names())
    return run, kept


def detail(room: Room, turns: list, names: dict[str, str]) -> str:
    lines = []
    for ref in room.turns:
        shown = [(t.start, t.end, names.get(t.label, t.label)) for t in turns
                 if min(t.end, ref.end) - max(t.start, ref.start) > 0]
        wrong = (ref.speaker == "clinician") != all(n == "Clinician" for _, _, n in shown)
        lines.append(f"  {'!!' if wrong else '  '} {ref.speaker:<9} {ref.start:6.2f}-{ref.end:6.2f} {ref.text[:60]!r}")
        if wrong:
            lines += [f"{'':16}{a:6.2f}-{b:6.2f} {n}" for a, b, n in shown]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--models-dir", default=str(Path(__file__).resolve().parents[1] / "models"))
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"where rooms and utterances are kept ({CACHE})")
    parser.add_argument("--diarize", action="append", default=[], metavar="KEY=NUMBER",
                        help="override a diarize.* setting, as in benchmarks.diarization")
    parser.add_argument("--detail", choices=list(VARIANTS), help="list each room's turns for this labeller")
    args = parser.parse_args(argv)
    overrides = {k: float(v) for k, v in (o.split("=", 1) for o in args.diarize)}

    from appliance.config.schema import DiarizeConfig
    from appliance.diarize import make_embedder

    embedder = make_embedder(DiarizeConfig(), args.models_dir, threads=1)
    rooms: dict[str, list[Room]] = defaultdict(list)
    rows: dict[str, list[dict]] = defaultdict(list)
    all_rooms, all_scores = [], []
    for room, calls, segments in record(args.split, args.cache, args.models_dir):
        run, kept = replay(room, calls, segments, embedder, overrides)
        s = score(room, run)
        group = f"{len(room.voices)}-speaker"
        rooms[group].append(room)
        rows[group].append(s)
        all_rooms.append(room)
        all_scores.append(s)
        if args.detail:
            print(room.name)
            print(detail(room, *kept[args.detail]))
    print(f"\n{args.split} split, labellers replayed ({', '.join(args.diarize) or 'defaults'}); "
          "ASR RTF not measured here, diar RTF = labeller CPU time per second of audio\n")
    print(table(dict(sorted(rows.items())), rooms))
    print()
    print(room_lines(all_rooms, all_scores))


if __name__ == "__main__":
    main()
