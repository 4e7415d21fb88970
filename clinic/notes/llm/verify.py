"""The check after generation: a sentence the model wrote is kept only with its evidence stated
and tested. Cited aliases are mapped back to segment ids; an id the transcript does not have, no
citation at all, or a number, drug or dose not found in the cited segments flags the sentence."""

from __future__ import annotations

from clinic.notes.grounding import missing, segment_texts
from clinic.notes.llm.parse import Drafted
from clinic.notes.llm.prompts import Aliases
from clinic.notes.model import Statement, Transcript


class Verifier:
    def __init__(self, transcript: Transcript, aliases: Aliases) -> None:
        self.texts = segment_texts(transcript)
        self.aliases = aliases

    def _resolve(self, cited: str) -> str | None:
        if cited in self.aliases.to_id:
            return self.aliases.to_id[cited]
        low = cited.lower()
        if low in self.aliases.to_id:  # "S3"
            return self.aliases.to_id[low]
        return cited if cited in self.texts else None  # a real id copied through

    def statement(self, d: Drafted, kind: str, order: float) -> Statement:
        evidence: list[str] = []
        flags: list[str] = []
        for c in d.cited:
            seg = self._resolve(c)
            if seg is None:
                flags.append(f"cites {c!r}, which is not a segment of this transcript")
            elif seg not in evidence:
                evidence.append(seg)
        if not d.cited:
            flags.append("cites no segment")
        absent, _ = missing(d.text, " ".join(self.texts[e] for e in evidence))
        flags += [f"{item!r} is not in the segments it cites" for item in absent]
        return Statement(d.text, tuple(evidence), kind, order, flags=tuple(flags))
