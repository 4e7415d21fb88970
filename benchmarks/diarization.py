"""Diarization benchmark: simulated exam rooms through the room device's own pipeline.

    python -m benchmarks.diarization [--quick] [--split test|dev] [--models-dir models]

Every room (`benchmarks/rooms.py`: pyroomacoustics ShoeBox, ReSpeaker 4-mic array, 2-3
talkers, some overlapping turns) is replayed through `appliance.speech.offline.transcribe_file`
— file capture of the 6-channel recording, Silero VAD, Whisper, the direction tracker that
`capture.array` attaches — with four labellers side by side on the same utterances: voice
only or voice + direction of arrival, each without and with the clinician's enrolment
(enrolled from ~20 s simulated in the same room). Labels are taken after the re-clustering at
Stop, as stored on the device.

Metrics:
- DER (pyannote.metrics) with a +/-0.25 s forgiveness collar around every reference boundary,
  i.e. ``DiarizationErrorRate(collar=0.5)`` — pyannote's collar is the total width, half on
  each side; overlapping speech is scored (one label per moment counts the other talker as missed);
- cpWER (meeteval): WER under the best mapping of hypothesis labels to reference speakers;
  "WER" beside it is the speaker-agnostic WER of the same text, so cpWER - WER is what wrong
  labels cost;
- clinician words right: share of the clinician's reference words (timed evenly across
  their turn) whose moment carries a label the device shows as "Clinician"; "other -> Clin"
  is the share of everyone else's words shown as "Clinician";
  "alone" repeats both for the words said while nobody else spoke (the rooms' overlapped
  turns are mostly a short answer talked over: one label per moment cannot be right for both);
- flagged: of the words shown under the wrong role (either way), the share on a line the
  device marks uncertain for a person to check; "lines" is the share of all words on such lines
  (what the check costs the clinician);
- RTF: wall time of the recognition thread spent in recognition vs in each labeller (plus the
  direction tracker's work on the capture thread, replayed separately), per second of audio,
  one thread (ONNX Runtime intra-op 1; BLAS pinned to 1 thread).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # "at 1 thread" means the numpy side too

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmarks.normalize import normalize  # noqa: E402
from benchmarks.rooms import SEED_BASE, Room, build, room_specs, split_voices  # noqa: E402

VARIANTS = {  # name: (direction, enrolment)
    "voice": (False, False),
    "voice + direction": (True, False),
    "voice + enrolment": (False, True),
    "voice + direction + enrolment": (True, True),
}
PRIMARY = "voice + direction"


class Fanout:
    """Several labellers on the same utterances, each timed; the pipeline sees the primary's answer."""

    def __init__(self, diarizers: dict, directional: set[str]) -> None:  # name -> OnlineDiarizer
        self.diarizers, self.directional = diarizers, directional
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: list[tuple[float, dict[str, list]]] = []

    def _timed(self, name: str, fn):  # type: ignore[no-untyped-def]
        w0, c0 = time.perf_counter(), time.thread_time()
        out = fn()
        self.wall[name] += time.perf_counter() - w0
        self.cpu[name] += time.thread_time() - c0
        return out

    def assign(self, audio16k, start, end, direction=None):  # type: ignore[no-untyped-def]
        answers = {name: self._timed(name, lambda d=d, name=name: d.assign(
            audio16k, start, end, direction if name in self.directional else None))
            for name, d in self.diarizers.items()}
        self.calls.append((round(start, 3), answers))
        return answers[PRIMARY]

    def recluster(self) -> dict[int, str]:
        fixed = {name: self._timed(name, d.recluster) for name, d in self.diarizers.items()}
        return fixed[PRIMARY]

    def display_names(self) -> dict[str, str]:
        return self.diarizers[PRIMARY].display_names()

    @property
    def total_wall(self) -> float:
        return sum(self.wall.values())


class TimedEngine:
    """The recognition engine, its streams timed (wall and thread CPU), whatever thread runs them."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.name, self.abilities = inner, inner.name, inner.abilities
        self.reset_context, self.note_final = inner.reset_context, inner.note_final
        self.wall = self.cpu = 0.0

    def new_stream(self, start_s=None):  # type: ignore[no-untyped-def]
        engine, stream = self, self.inner.new_stream(start_s)

        class Timed:
            def _t(self, fn, *a):  # type: ignore[no-untyped-def]
                w0, c0 = time.perf_counter(), time.thread_time()
                try:
                    return fn(*a)
                finally:
                    engine.wall += time.perf_counter() - w0
                    engine.cpu += time.thread_time() - c0

            def accept(self, samples):  # type: ignore[no-untyped-def]
                return self._t(stream.accept, samples)

            def partial(self):  # type: ignore[no-untyped-def]
                return self._t(stream.partial)

            def cancel(self):  # type: ignore[no-untyped-def]
                stream.cancel()  # from the capture thread: not the decoder's time

            def finish(self):  # type: ignore[no-untyped-def]
                return self._t(stream.finish)

        return Timed()


def _annotation(spans: list[tuple[float, float, str]]):  # -> pyannote.core.Annotation
    from pyannote.core import Annotation, Segment

    ann = Annotation()
    for k, (a, b, label) in enumerate(spans):
        if b > a:
            ann[Segment(a, b), k] = label
    return ann


def fed_tracker(room: Room, keep_s: float = 60.0):  # -> (DirectionTracker, seconds)
    """A direction tracker fed the room's recording in capture-sized blocks, and the wall time
    the capture thread spends feeding it. ``keep_s``: how much of the recording it can answer for."""
    import soundfile as sf

    from appliance.diarize import DirectionTracker
    from appliance.hardware.arrays import RESPEAKER_USB_4MIC_V2

    raw, rate = sf.read(room.path, dtype="float32")
    tracker = DirectionTracker(RESPEAKER_USB_4MIC_V2, rate, keep_s=keep_s)
    block = int(0.032 * rate)
    t0 = time.perf_counter()
    for i in range(0, len(raw), block):
        tracker.feed(raw[i:i + block], i / rate)
    return tracker, time.perf_counter() - t0


def run_room(room: Room, engine, embedder, models_dir: str,  # type: ignore[no-untyped-def]
             overrides: dict[str, float] | None = None) -> dict:
    from appliance.config.schema import ApplianceConfig, CaptureConfig, PathsConfig
    from appliance.diarize import OnlineDiarizer, enrol
    from appliance.speech.offline import transcribe_file

    cfg = ApplianceConfig(paths=PathsConfig(models_dir=models_dir),
                          capture=CaptureConfig(asr_channels=(0,), array="respeaker-usb-4mic"))
    cfg = dataclasses.replace(cfg, diarize=dataclasses.replace(cfg.diarize, **(overrides or {})))
    enrolled = enrol(room.enrolment, embedder)
    diarizers = {name: OnlineDiarizer(dataclasses.replace(cfg.diarize, use_direction=direction), embedder,
                                      enrolled=enrolled if enrolment else None)
                 for name, (direction, enrolment) in VARIANTS.items()}
    fan = Fanout(diarizers, {n for n, (direction, _) in VARIANTS.items() if direction})
    engine.wall = engine.cpu = 0.0
    result = transcribe_file(cfg, engine, str(room.path), realtime=False, diarizer=fan)
    assert fan.calls and fan.diarizers[PRIMARY].turns, f"{room.name}: no speaker turns at all"
    out = {"duration": room.duration, "asr_wall": engine.wall, "asr_cpu": engine.cpu,
           "tracker_wall": fed_tracker(room)[1], "variants": {}}
    calls = dict(fan.calls)
    for name, d in diarizers.items():
        live = {start: answers[name] for start, answers in calls.items()}
        out["variants"][name] = {"hyp": [(t.start, t.end, t.label) for t in d.turns], "names": d.display_names(),
                                 "segments": segment_labels([(s.start, s.end, s.text) for s in result.segments],
                                                            live, d.turns),
                                 "flagged": flagged_spans(live),
                                 "wall": fan.wall[name], "cpu": fan.cpu[name]}
    out["text"] = " ".join(s.text for s in result.segments)
    return out


def flagged_spans(live: dict) -> list[tuple[float, float]]:
    """(start, end) of the turns the labeller marked uncertain live (the panel's "check" mark)."""
    return [(t.start, t.end) for turns in live.values() for t in turns if t.uncertain]


def segment_labels(segments: list[tuple[float, float, str]], live: dict, turns: list) -> list[tuple[str, str]]:
    """(label after Stop, text) per transcript segment; ``live`` maps each utterance's start to
    the turns the labeller gave it live (a split utterance gives several segments)."""
    out = []
    for start, end, text in segments:
        began = max((t for t in live if t <= round(start, 3) + 1e-6), default=None)
        given = live.get(began, []) if began is not None else []
        inside = [t for t in given if min(t.end, end) - max(t.start, start) > 0] or given
        longest = max(inside, key=lambda t: min(t.end, end) - max(t.start, start)) if inside else None
        out.append((turns[longest.index].label if longest is not None and longest.index >= 0 else "?", text))
    return out


def cp_word_error_rate(ref: list[str], hyp: list[str]):  # type: ignore[no-untyped-def]
    """meeteval's cpWER, without its notes on stdout about missing timestamps."""
    import contextlib
    import io

    from meeteval.wer.wer.cp import cp_word_error_rate as cpwer

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return cpwer(ref, hyp)


def score(room: Room, run: dict) -> dict[str, dict[str, float]]:
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref = _annotation([(t.start, t.end, t.speaker) for t in room.turns])
    uem = Timeline([Segment(0, room.duration)])
    speakers = sorted({t.speaker for t in room.turns})
    ref_text = [normalize(" ".join(t.text for t in room.turns if t.speaker == s)) for s in speakers]
    # speaker-blind WER: the reference in the order it was spoken, as the transcript reads
    spoken = normalize(" ".join(t.text for t in sorted(room.turns, key=lambda t: t.start)))
    plain = cp_word_error_rate([spoken], [normalize(run["text"])])
    out = {}
    for name, v in run["variants"].items():
        der = DiarizationErrorRate(collar=0.5, skip_overlap=False)(ref, _annotation(v["hyp"]), uem=uem,
                                                                    detailed=True)
        labels = sorted({lab for lab, _ in v["segments"]})
        hyp_text = [normalize(" ".join(text for lab, text in v["segments"] if lab == x)) for x in labels]
        cp = cp_word_error_rate(ref_text, hyp_text)
        clin = dict.fromkeys(("right", "n", "other_as", "other_n", "right_1", "n_1", "other_as_1", "other_n_1",
                              "words_flagged", "wrong", "wrong_flagged"), 0)
        for t in room.turns:
            words = normalize(t.text).split()
            for k in range(len(words)):
                at = t.start + (k + 0.5) * (t.end - t.start) / len(words)
                shown = [v["names"].get(lab, lab) for a, b, lab in v["hyp"] if a <= at < b]
                is_clin = "Clinician" in shown
                # "_1": words said while nobody else spoke (one label per moment cannot be right
                # for both people talking at once)
                alone = not any(u is not t and u.start <= at < u.end for u in room.turns)
                words_key, shown_key = ("n", "right") if t.speaker == "clinician" else ("other_n", "other_as")
                for suffix in ("", "_1") if alone else ("",):
                    clin[words_key + suffix] += 1
                    clin[shown_key + suffix] += is_clin
                flagged = any(a <= at < b for a, b in v["flagged"])
                wrong = is_clin != (t.speaker == "clinician")
                clin["words_flagged"] += flagged
                clin["wrong"] += wrong
                clin["wrong_flagged"] += wrong and flagged
        out[name] = {"total": der["total"], "miss": der["missed detection"], "fa": der["false alarm"],
                     "conf": der["confusion"], "cp_err": cp.errors, "cp_len": cp.length,
                     "wer_err": plain.errors, "wer_len": plain.length, **clin,
                     "dur": run["duration"], "asr": run["asr_wall"],
                     "diar": v["wall"] + (run["tracker_wall"] if VARIANTS[name][0] else 0.0),
                     "diar_cpu": v["cpu"], "speakers": len({lab for _, _, lab in v["hyp"]})}
    return out


def _pct(a: float, b: float) -> str:
    return f"{100 * a / b:5.1f}" if b else "    -"


def table(rows: dict[str, list[dict[str, dict[str, float]]]], rooms: dict[str, list[Room]]) -> str:
    head = (f"{'rooms':<22} {'labeller':<30} {'DER %':>6} {'miss':>5} {'FA':>5} {'conf':>5} {'WER %':>6} "
            f"{'cpWER %':>7} {'clin→Clin %':>11} {'other→Clin %':>12} {'alone: clin':>11} {'other':>6} "
            f"{'flagged':>7} {'lines':>5} "
            f"{'ASR RTF':>7} {'diar RTF':>8}")
    lines = [head, "-" * len(head)]
    for group, scores in rows.items():
        audio = sum(r.duration for r in rooms[group])
        label = f"{group} ({len(scores)}, {audio / 60:.1f} min)"
        for name in VARIANTS:
            s = {k: sum(x[name][k] for x in scores) for k in scores[0][name]}
            enrolled = VARIANTS[name][1]
            lines.append(
                f"{label:<22} {name:<30} {_pct(s['miss'] + s['fa'] + s['conf'], s['total']):>6} "
                f"{_pct(s['miss'], s['total']):>5} {_pct(s['fa'], s['total']):>5} {_pct(s['conf'], s['total']):>5} "
                f"{_pct(s['wer_err'], s['wer_len']):>6} {_pct(s['cp_err'], s['cp_len']):>7} "
                f"{_pct(s['right'], s['n']) if enrolled else '    -':>11} "
                f"{_pct(s['other_as'], s['other_n']) if enrolled else '    -':>12} "
                f"{_pct(s['right_1'], s['n_1']) if enrolled else '    -':>11} "
                f"{_pct(s['other_as_1'], s['other_n_1']) if enrolled else '    -':>6} "
                f"{_pct(s['wrong_flagged'], s['wrong']) if enrolled else '    -':>7} "
                f"{_pct(s['words_flagged'], s['n'] + s['other_n']):>5} "
                f"{s['asr'] / s['dur']:7.3f} {s['diar'] / s['dur']:8.3f}")
            label = ""
    return "\n".join(lines)


def room_lines(all_rooms: list[Room], scores: list[dict[str, dict[str, float]]]) -> str:
    head = f"{'room':<44} {'RT60':>4} {'SNR':>4} {'dur s':>5}  " + "  ".join(f"{n[:22]:>22}" for n in VARIANTS)
    lines = [head, "-" * len(head)]
    for room, s in zip(all_rooms, scores, strict=True):
        cells = []
        for name in VARIANTS:
            x = s[name]
            der = _pct(x["miss"] + x["fa"] + x["conf"], x["total"]).strip()
            extra = f" clin {_pct(x['right'], x['n']).strip()}" if VARIANTS[name][1] else ""
            cell = f"DER {der} ({int(x['speakers'])} spk){extra}"
            cells.append(f"{cell:>22}")
        lines.append(f"{room.name:<44} {room.rt60:4.2f} {room.snr_db:4.0f} {room.duration:5.0f}  " + "  ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 rooms of ~8 turns instead of 8 of ~14")
    parser.add_argument("--split", choices=("test", "dev"), default="test",
                        help="test: reported (test voices, ACI-Bench valid dialogues, test rooms); dev: for "
                             "tuning (dev voices, train dialogues, dev rooms); the two share nothing")
    parser.add_argument("--models-dir", default=str(Path(__file__).resolve().parents[1] / "models"))
    parser.add_argument("--diarize", action="append", default=[], metavar="KEY=NUMBER",
                        help="override a diarize.* setting (e.g. enrolled_threshold=0.6), for calibrating on dev")
    args = parser.parse_args(argv)
    overrides = {k: float(v) for k, v in (o.split("=", 1) for o in args.diarize)}

    from appliance.asr.factory import make_engine
    from appliance.config.schema import AsrConfig, DiarizeConfig
    from appliance.diarize import make_embedder

    engine = TimedEngine(make_engine(AsrConfig(engine="whisper-onnx", threads=1), args.models_dir))
    embedder = make_embedder(DiarizeConfig(), args.models_dir, threads=1)
    rooms: dict[str, list[Room]] = defaultdict(list)
    rows: dict[str, list[dict]] = defaultdict(list)
    all_rooms, all_scores = [], []
    with tempfile.TemporaryDirectory(prefix="diar-bench-") as tmp:
        for spec in room_specs(args.split, args.quick):
            t0 = time.perf_counter()
            room = build(spec, "valid" if args.split == "test" else "train", Path(tmp),
                         max_turns=8 if args.quick else 14)
            built = time.perf_counter() - t0
            s = score(room, run_room(room, engine, embedder, args.models_dir, overrides))
            group = f"{len(room.voices)}-speaker"
            rooms[group].append(room)
            rows[group].append(s)
            all_rooms.append(room)
            all_scores.append(s)
            print(f"  {room.name}: {room.duration:.0f} s, {len(room.turns)} turns, RT60 {room.rt60:.2f} s, "
                  f"SNR {room.snr_db:.0f} dB (built in {built:.0f} s); DER "
                  + ", ".join(f"{n} {_pct(x['miss'] + x['fa'] + x['conf'], x['total']).strip()}"
                              for n, x in s.items()), flush=True)
    print()
    print(f"Diarization, simulated exam rooms ({args.split} split{', quick' if args.quick else ''}), "
          f"{date.today().isoformat()}; DER with a +/-0.25 s collar, overlap scored")
    voices = sorted(split_voices(args.split))
    print(f"{args.split} split: {len(voices)} distinct voices ({', '.join(voices)}); ACI-Bench "
          f"{'valid' if args.split == 'test' else 'train'} dialogues; rooms from seeds {SEED_BASE[args.split]}+ "
          f"({'never used for tuning' if args.split == 'test' else 'where thresholds and rules were chosen'})")
    print()
    print(table(dict(sorted(rows.items())), rooms))
    print()
    print(room_lines(all_rooms, all_scores))


if __name__ == "__main__":
    main()
