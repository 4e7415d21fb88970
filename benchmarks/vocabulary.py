"""Custom vocabulary: recall of clinic terms with and without the term list.

    python -m benchmarks.vocabulary [--models-dir models]

Sentences containing drug names and conditions are spoken by espeak-ng; each is
transcribed by the default engine twice, without and with `asr.vocabulary` set to the
terms. Term recall = share of term occurrences that appear verbatim in the transcript.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import numpy as np

from benchmarks.datasets import espeak

ROOT = Path(__file__).resolve().parents[1]

SENTENCES = [
    ("He takes metoprolol twice a day for his blood pressure.", "metoprolol"),
    ("We will start lisinopril ten milligrams daily.", "lisinopril"),
    ("Her cholesterol is managed with atorvastatin.", "atorvastatin"),
    ("Continue levothyroxine for the hypothyroidism.", "levothyroxine"),
    ("She was prescribed gabapentin for the neuropathy.", "gabapentin"),
    ("Take omeprazole before breakfast for the reflux.", "omeprazole"),
    ("The patient reports dyspnea on exertion.", "dyspnea"),
    ("He has a history of atrial fibrillation and takes apixaban.", "apixaban"),
    ("Use the albuterol inhaler as needed for wheezing.", "albuterol"),
    ("We discussed hydrochlorothiazide for the hypertension.", "hydrochlorothiazide"),
    ("Her sertraline dose was increased last month.", "sertraline"),
    ("The rash looks like cellulitis, so we start cephalexin.", "cephalexin"),
]
TERMS = sorted({t for _, t in SENTENCES} | {"hypothyroidism", "neuropathy", "atrial fibrillation", "cellulitis"})


def term_recall(engine, clips: list[tuple[np.ndarray, str]]) -> tuple[float, list[str]]:  # type: ignore[no-untyped-def]
    from appliance.asr.engine import transcribe_with

    hits, texts = 0, []
    for audio, term in clips:
        text = transcribe_with(engine, audio).text
        texts.append(text)
        hits += bool(re.search(rf"\b{re.escape(term)}\b", text, re.IGNORECASE))
    return hits / len(clips), texts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", default=str(ROOT / "models"))
    args = p.parse_args()
    from appliance.asr.factory import make_engine
    from appliance.config.schema import AsrConfig

    clips = [(espeak(text, "en-us"), term) for text, term in SENTENCES]
    plain = AsrConfig(engine="whisper-onnx")
    without, texts0 = term_recall(make_engine(plain, args.models_dir), clips)
    with_vocab, texts1 = term_recall(make_engine(dataclasses.replace(plain, vocabulary=tuple(TERMS)),
                                                 args.models_dir), clips)
    print(f"custom vocabulary: {len(TERMS)} terms, {len(clips)} sentences (espeak-ng en-us)\n")
    print(f"{'term':<22} {'without vocabulary':<48} with vocabulary")
    for (_, term), a, b in zip(clips, texts0, texts1, strict=True):
        print(f"{term:<22} {a[:46]:<48} {b[:60]}")
    print(f"\nterm recall without vocabulary: {without * 100:5.1f} %")
    print(f"term recall with vocabulary:    {with_vocab * 100:5.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
