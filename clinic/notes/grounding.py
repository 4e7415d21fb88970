"""Is what the note says in the transcript? Numbers, drug names and doses of each sentence are
looked up in the segments the sentence cites (number words read as digits on both sides)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clinic.notes import lexicon
from clinic.notes.model import Note, Transcript
from clinic.notes.text import clean


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


def check(note: Note, transcript: Transcript) -> Grounding:
    texts = {s.id: clean(s.text).lower() for s in transcript.segments}
    g = Grounding()
    for st in note.statements:
        g.sentences += 1
        cited = [texts[i] for i in st.evidence if i in texts]
        if cited:
            g.with_evidence += 1
        source = " ".join(cited)
        flat = source.replace(" ", "")
        for item in checkable(st.text):
            g.facts += 1
            if any(c.isdigit() for c in item) and not item.replace(".", "").replace("/", "").isdigit():
                found = item in flat  # a dose: "20 mg" = "20mg"
            else:
                found = re.search(rf"(?<![\w]){re.escape(item)}(?![\w])", source) is not None
            if found:
                g.supported += 1
            else:
                g.unsupported.append(f"{item!r} in {st.text!r}")
    return g
