"""The intro line's facts (name, age, sex, chief complaint), read from what was said, each with the
segments it came from. Nothing is filled in that the visit did not say."""

from __future__ import annotations

import re
from collections import Counter

from clinic.notes import lexicon
from clinic.notes.lexicon import wordset
from clinic.notes.model import CLINICIAN, Facts, Segment, SpeakerRole

_AGE = re.compile(r"\b(\d{1,3})[- ]year[- ]old\b|\b(?:I'm|I am|she's|he's|she is|he is) (\d{1,3})(?: years old)?\b",
                  re.I)
_SEX_WORD = re.compile(r"\b(?:year[- ]old|pleasant|a) (male|female|man|woman|gentleman|lady|boy|girl)\b", re.I)
_SEX_MAP = {"male": "male", "man": "male", "gentleman": "male", "boy": "male", "female": "female", "woman": "female",
            "lady": "female", "girl": "female"}
_GREETING = re.compile(r"^(?:hi|hey|hello|good (?:morning|afternoon|evening))[,\s]+(?:there[,\s]+)?(?:mr\.?|mrs\.?|"
                       r"ms\.?|miss)?\s*([a-z]+)\b", re.I)
_NOT_NAMES = wordset("""there how it's its good doctor doc dr nice so okay yes yeah i you we everyone guys
again""")
_PRESENTS = re.compile(r"\b(?:presents?|presenting|here|coming in|come in|came in|seeing you|see you)(?: today)?"
                       r"(?: to the clinic)?(?: today)? (?:for|with|because of|about)(?: (?:a|an|his|her|your|the))?"
                       r" ([^.?!,]{3,60})", re.I)
_INJURY = re.compile(r"\byou (injured|hurt|have|had|broke|sprained|twisted) (?:your )?([^.?!,]{3,40})", re.I)
# "you injured your wrist" → "wrist injury"; "you broke your arm" → "broken arm"
_INJURY_FORM = {"injured": "{} injury", "hurt": "{} injury", "broke": "broken {}", "sprained": "sprained {}",
                "twisted": "twisted {}", "have": "{}", "had": "{}"}
_CC_END = re.compile(r"\b(?:and I|so I|but|because|which|that|okay|alright|how|can you|could you)\b", re.I)
_HE_SHE = re.compile(r"\b(he|she|his|her|him)\b", re.I)


def extract(segments: tuple[Segment, ...], roles: dict[str, SpeakerRole], cleaned: dict[str, str]) -> Facts:
    """`cleaned`: segment id → cleaned text."""
    evidence: list[str] = []
    name = age = sex = cc = ""
    clinician = [s for s in segments if roles[s.speaker].role == CLINICIAN]
    for s in clinician[:6]:
        m = _GREETING.match(cleaned[s.id])
        if m and m.group(1).lower() not in _NOT_NAMES:
            name = m.group(1).capitalize()
            evidence.append(s.id)
            break
    for s in segments:
        m = _AGE.search(cleaned[s.id])
        if m:
            age = m.group(1) or m.group(2)
            evidence.append(s.id)
            sm = _SEX_WORD.search(cleaned[s.id])
            if sm:
                sex = _SEX_MAP[sm.group(1).lower()]
            break
    if not sex:
        # The clinician speaking about the patient to the record ("she is a 61-year-old…").
        counts = Counter(m.group(1).lower() for s in clinician for m in _HE_SHE.finditer(cleaned[s.id]))
        male, female = counts["he"] + counts["his"] + counts["him"], counts["she"] + counts["her"]
        if max(male, female) >= 2 and max(male, female) >= 3 * min(male, female):
            sex = "male" if male > female else "female"
            evidence.extend(s.id for s in clinician if _HE_SHE.search(cleaned[s.id]))
    for s in clinician[:12]:
        text = cleaned[s.id]
        m = _PRESENTS.search(text)
        injury = None if m else _INJURY.search(text)
        if m:
            cc = _trim(m.group(1))
        elif injury:
            cc = _INJURY_FORM[injury.group(1).lower()].format(_trim(injury.group(2)))
        if cc:
            evidence.append(s.id)
            break
    if not cc:
        for s in segments[:20]:
            m = lexicon.SYMPTOM.search(cleaned[s.id])
            if m and roles[s.speaker].role != CLINICIAN:
                cc = m.group(0).lower()
                evidence.append(s.id)
                break
    return Facts(name=name, age=age, sex=sex, chief_complaint=cc, evidence=tuple(dict.fromkeys(evidence)))


def _trim(phrase: str) -> str:
    phrase = _CC_END.split(phrase)[0]
    return phrase.strip().rstrip(".").lower()


def intro_line(f: Facts) -> str:
    """'Brian is a 58-year-old male who presents for follow-up of chronic problems.' — only what is known."""
    who = f.name or "The patient"
    desc = " ".join(x for x in (f"{f.age}-year-old" if f.age else "", f.sex) if x)
    line = f"{who} is a {desc}" if desc else who
    if f.chief_complaint:
        line += f" who presents for {f.chief_complaint}" if desc else f" presents for {f.chief_complaint}"
    elif not desc:
        return ""
    return line + "."
