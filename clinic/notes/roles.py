"""Who is the clinician? Named on the device ("Clinician" / "Patient"), or guessed for "Speaker N"
from what each speaker says: questions, exam and plan vocabulary. A guess is recorded as one so
the reviewer can flip it."""

from __future__ import annotations

import re
from collections import defaultdict

from clinic.notes import lexicon
from clinic.notes.model import CLINICIAN, OTHER, PATIENT, Segment, SpeakerRole

_NAMED = {"clinician": CLINICIAN, "doctor": CLINICIAN, "physician": CLINICIAN, "provider": CLINICIAN,
          "nurse": CLINICIAN, "patient": PATIENT}


def _named_role(name: str) -> str | None:
    return _NAMED.get(re.sub(r"[^a-z]", "", name.lower()))


def _clinician_cues(texts: list[str]) -> float:
    """Cues per utterance that a speaker leads the visit: questions, exam, results and plan words."""
    if not texts:
        return 0.0
    cues = 0
    for t in texts:
        cues += t.count("?") + bool(lexicon.QUESTION_START.match(t))
        cues += 2 * sum(bool(p.search(t)) for p in (lexicon.EXAM, lexicon.RESULTS, lexicon.PLAN, lexicon.ASSESSMENT))
    return cues / len(texts)


def assign_roles(segments: tuple[Segment, ...], speakers: dict[str, str],
                 clinician: str | None = None) -> dict[str, SpeakerRole]:
    """Role of every speaker label in `segments`. `clinician` (a label or display name) is a reviewer's
    override: that speaker is the clinician, recorded as set by a person; the others are ranked as usual."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for s in segments:
        by_label[s.speaker].append(s.text)
    chosen = None
    if clinician:
        chosen = next((lb for lb in by_label if clinician in (lb, speakers.get(lb, lb))), None)
        if chosen is None:
            known = ", ".join(speakers.get(lb, lb) for lb in by_label) or "none"
            raise ValueError(f"clinician {clinician!r} is not a speaker of this visit (speakers: {known})")
    roles: dict[str, SpeakerRole] = {}
    unnamed: list[str] = []
    for label in by_label:
        name = speakers.get(label, label)
        role = _named_role(name)
        if label == chosen:
            roles[label] = SpeakerRole(label, name, CLINICIAN, guessed=False, set_by_reviewer=True)
        elif role is None or (chosen is not None and role == CLINICIAN):  # the override beats a device name
            unnamed.append(label)
        else:
            roles[label] = SpeakerRole(label, name, role, guessed=False)
    if unnamed:
        have_clinician = any(r.role == CLINICIAN for r in roles.values())
        ranked = sorted(unnamed, key=lambda lb: _clinician_cues(by_label[lb]), reverse=True)
        if not have_clinician:  # the rest: whoever speaks most is the patient, anyone else a companion
            ranked = ranked[:1] + sorted(ranked[1:], key=lambda lb: len(by_label[lb]), reverse=True)
        else:
            ranked = sorted(ranked, key=lambda lb: len(by_label[lb]), reverse=True)
            ranked.insert(0, "")  # no clinician to guess
        for i, label in enumerate(ranked):
            if not label:
                continue
            if i == 0:
                role = CLINICIAN
            elif not any(r.role == PATIENT for r in roles.values()):
                role = PATIENT
            else:
                role = OTHER
            roles[label] = SpeakerRole(label, speakers.get(label, label), role, guessed=True)
    return roles
