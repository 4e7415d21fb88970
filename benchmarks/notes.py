"""Clinic notes, built-in generator: ROUGE and grounding on ACI-Bench, and the time one note takes.

Reads ACI-Bench from ../shared/data/aci-bench (not part of the repo; says so and stops when it is
absent). The generator's rules were tuned on valid only; train is reported as held out.

    .venv/bin/python -m benchmarks.notes [--data DIR] [--template H&P] [--runs 5]

Timing: valid dialogues joined into one visit of ≥ 4,500 words (30 minutes at 150 words a minute)
and of ≥ 18,000 words (2 hours); the note for each template is written `--runs` times.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from benchmarks.datasets import SHARED
from clinic.notes import builtin
from clinic.notes.evaluate import evaluate, read_rows, table
from clinic.notes.render import render
from clinic.notes.templates import TemplateRegistry
from clinic.notes.transcript import from_dialogue

DATA = SHARED / "aci-bench"
WORDS_PER_MINUTE = 150


def long_visit(csv_path: Path, minutes: int) -> str:
    """Dialogues joined until the visit would last `minutes` at WORDS_PER_MINUTE."""
    rows = read_rows(str(csv_path))
    parts: list[str] = []
    words, i = 0, 0
    while words < minutes * WORDS_PER_MINUTE:
        dialogue = rows[i % len(rows)]["dialogue"]
        parts.append(dialogue)
        words += len(dialogue.split())
        i += 1
    return "\n".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--template", default="H&P")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if not (args.data / "valid.csv").exists():
        print(f"ACI-Bench not found at {args.data} (../shared/data is not part of the repo): nothing measured",
              file=sys.stderr)
        return 0
    registry = TemplateRegistry()
    template = registry.get(args.template)
    if template is None:
        print(f"unknown template {args.template!r}", file=sys.stderr)
        return 2
    for split, role in (("valid", "rules tuned here"), ("train", "held out")):
        path = args.data / f"{split}.csv"
        print(f"== {split} ({role}) ==")
        print(table(evaluate(str(path), template), str(path), template))
    print(f"== time per note (median / max of {args.runs} runs) ==")
    for minutes in (30, 120):
        dialogue = long_visit(args.data / "valid.csv", minutes)
        transcript = from_dialogue(dialogue)
        for t in registry.templates.values():
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                render(builtin.generate(transcript, t), t, "text")
                times.append(time.perf_counter() - t0)
            print(f"{minutes:>4}-minute visit ({len(dialogue.split()):,} words, {len(transcript.segments)} "
                  f"segments), {t.name:<21} {1000 * statistics.median(times):7.0f} ms / {1000 * max(times):5.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
