"""`clinic eval DATA.csv`: ROUGE-1/2/L (rouge-score, stemmed F1 averaged over visits, full note;
ROUGE-L is rougeLsum over lines) of generated notes against the reference notes of an
ACI-Bench-format CSV (columns dialogue, note), with a grounding figure, beside the transcript
copied as the note on the same data and the published anchors on ACI-Bench test set 1."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

from clinic.config import LlmConfig
from clinic.notes import builtin, grounding
from clinic.notes.llm.generator import VERSION as LLM_VERSION
from clinic.notes.llm.generator import generate as llm_generate
from clinic.notes.render import render
from clinic.notes.templates import Template
from clinic.notes.transcript import TranscriptError, from_dialogue

# Yim et al. 2023, ACI-Bench test set 1, full note: ROUGE-1 / ROUGE-2 / ROUGE-L.
ANCHORS = (("transcript copy", 32.84, 12.53, 30.61), ("ChatGPT", 47.44, 19.01, 42.47), ("GPT-4", 51.76, 22.58, 45.97))


@dataclass
class EvalResult:
    rows: int = 0
    rouge1: float = 0.0
    rouge2: float = 0.0
    rougeL: float = 0.0
    copy: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the transcript itself as the note, this data
    sentences: int = 0
    with_evidence: int = 0
    facts: int = 0
    supported: int = 0
    seconds_max: float = 0.0
    unsupported: list[str] = field(default_factory=list)
    generator: str = builtin.NAME
    flagged: int = 0  # sentences the LLM check flagged
    fallbacks: int = 0  # LLM notes that fell back to the built-in note
    per_row: list[tuple[str, float]] = field(default_factory=list)


def read_rows(path: str) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise TranscriptError(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TranscriptError(f"{path}: not a CSV file: {exc}") from None
    if not rows or not {"dialogue", "note"} <= set(rows[0]):
        raise TranscriptError(f"{path}: needs the columns 'dialogue' and 'note' (ACI-Bench format)")
    return rows


def evaluate(path: str, template: Template, generator: str = builtin.NAME, llm: LlmConfig | None = None,
             limit: int | None = None) -> EvalResult:
    """`generator` "llm" writes the notes through `llm` (falling back to built-in, counted)."""
    from rouge_score import rouge_scorer  # the clinic extra; only evaluation needs it

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
    res = EvalResult(generator=generator)
    for i, row in enumerate(read_rows(path)[:limit]):
        transcript = from_dialogue(row["dialogue"])
        t0 = time.perf_counter()
        note = (llm_generate(transcript, template, llm or LlmConfig()) if generator == "llm"
                else builtin.generate(transcript, template))
        res.flagged += sum(1 for st in note.statements if st.flags)
        res.fallbacks += bool(note.fallback)
        text = render(note, template, "text")
        res.seconds_max = max(res.seconds_max, time.perf_counter() - t0)
        s = scorer.score(row["note"], text)
        res.rows += 1
        res.rouge1 += s["rouge1"].fmeasure
        res.rouge2 += s["rouge2"].fmeasure
        res.rougeL += s["rougeLsum"].fmeasure
        c = scorer.score(row["note"], "\n".join(s.text for s in transcript.segments))
        res.copy = (res.copy[0] + c["rouge1"].fmeasure, res.copy[1] + c["rouge2"].fmeasure,
                    res.copy[2] + c["rougeLsum"].fmeasure)
        res.per_row.append((row.get("encounter_id", str(i + 1)), 100 * s["rouge1"].fmeasure))
        g = grounding.check(note, transcript)
        res.sentences += g.sentences
        res.with_evidence += g.with_evidence
        res.facts += g.facts
        res.supported += g.supported
        res.unsupported += g.unsupported
    for key in ("rouge1", "rouge2", "rougeL"):
        setattr(res, key, 100 * getattr(res, key) / max(res.rows, 1))
    res.copy = tuple(100 * x / max(res.rows, 1) for x in res.copy)  # type: ignore[assignment]
    return res


def table(res: EvalResult, path: str, template: Template) -> str:
    version = builtin.VERSION if res.generator == builtin.NAME else LLM_VERSION
    label = "built-in" if res.generator == builtin.NAME else "LLM"
    lines = [f"{Path(path).name}: {res.rows} visits, template {template.name}, generator {res.generator} {version}",
             f"{'system':<28}{'ROUGE-1':>9}{'ROUGE-2':>9}{'ROUGE-L':>9}",
             f"{label + ' (this run)':<28}{res.rouge1:>9.2f}{res.rouge2:>9.2f}{res.rougeL:>9.2f}",
             f"{'transcript copy (this run)':<28}{res.copy[0]:>9.2f}{res.copy[1]:>9.2f}{res.copy[2]:>9.2f}"]
    lines += [f"{name + ' (published)':<28}{r1:>9.2f}{r2:>9.2f}{rl:>9.2f}" for name, r1, r2, rl in ANCHORS]
    share = 100 * res.with_evidence / res.sentences if res.sentences else 100.0
    found = 100 * res.supported / res.facts if res.facts else 100.0
    lines += [f"grounding: {share:.1f} % of {res.sentences} note sentences cite segments; "
              f"{found:.1f} % of {res.facts} numbers/drugs/doses found in the cited segments",
              f"slowest note: {1000 * res.seconds_max:.0f} ms"]
    if res.generator != builtin.NAME:
        lines.append(f"LLM check: {res.flagged} of {res.sentences} sentences flagged; {res.fallbacks} of {res.rows} "
                     "notes fell back to the built-in note")
    lines += [f"  unsupported: {u}" for u in res.unsupported[:10]]
    return "\n".join(lines) + "\n"
