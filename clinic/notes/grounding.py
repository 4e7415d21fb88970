"""Is what the note says in the transcript? Numbers, drug names and doses of each sentence are
looked up in the segments the sentence cites (number words read as digits on both sides)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clinic.notes import lexicon
from clinic.notes.model import Note, Transcript
from clinic.notes.text import clean, digits


@dataclass
class Grounding:
    sentences: int = 0
    with_evidence: int = 0
    facts: int = 0  # numbers, drugs and doses in the note
    supported: int = 0  # … of those found in the cited segments
    unsupported: list[str] = field(default_factory=list)

    @property
    def evidence_share(self) -> float:
        return self.with_evidence / self.sentences if self.sentences else 1.0

    @property
    def supported_share(self) -> float:
        return self.supported / self.facts if self.facts else 1.0


def checkable(text: str) -> list[str]:
    """The numbers, drug names and doses in a sentence, normalised."""
    items = [m.group(0).lower().replace(" ", "") for m in lexicon.DOSE.finditer(text)]
    items += [m.group(0) for m in lexicon.NUMBER.finditer(text)]
    items += [m.group(0).lower() for m in lexicon.DRUGS.finditer(text)]
    items += [m.group(0).lower() for m in lexicon.DRUG_SUFFIX.finditer(text)]
    return list(dict.fromkeys(items))


def missing(text: str, source: str) -> tuple[list[str], int]:
    """The numbers, drugs and doses of `text` not found in `source` (cleaned, lower-case segment
    text), and how many were checked."""
    flat = source.replace(" ", "")
    items = checkable(digits(text))
    absent = []
    for item in items:
        if any(c.isdigit() for c in item) and not item.replace(".", "").replace("/", "").isdigit():
            found = item in flat  # a dose: "20 mg" = "20mg"
        else:
            found = re.search(rf"(?<![\w]){re.escape(item)}(?![\w])", source) is not None
        if not found:
            absent.append(item)
    return absent, len(items)


def segment_texts(transcript: Transcript) -> dict[str, str]:
    """Segment id → cleaned, lower-case text: what a note's sentences are checked against."""
    return {s.id: clean(s.text).lower() for s in transcript.segments}


def check(note: Note, transcript: Transcript) -> Grounding:
    texts = segment_texts(transcript)
    g = Grounding()
    for st in note.statements:
        g.sentences += 1
        cited = [texts[i] for i in st.evidence if i in texts]
        if cited:
            g.with_evidence += 1
        absent, checked = missing(st.text, " ".join(cited))
        g.facts += checked
        g.supported += checked - len(absent)
        g.unsupported += [f"{item!r} in {st.text!r}" for item in absent]
    return g
