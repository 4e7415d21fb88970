"""Transcript → statements. Each spoken sentence is cleaned, dropped if it carries no content
(greetings, back-channels, small talk), given a kind (which section it belongs to) and rewritten
into the note's voice; an answered symptom question becomes "Denies X" / "Reports X". Every
statement keeps the ids of the segments it came from."""

from __future__ import annotations

import re
from dataclasses import dataclass

from clinic.notes import lexicon, rewrite
from clinic.notes.model import CLINICIAN, PATIENT, Facts, Segment, SpeakerRole, Statement
from clinic.notes.text import words

# Clinician cue → kind, with the weight a match adds; the best-scoring kind wins.
_CLINICIAN_CUES = (("vitals", lexicon.VITALS, 2.0), ("results", lexicon.RESULTS, 1.5), ("exam", lexicon.EXAM, 1.0),
                   ("assessment", lexicon.ASSESSMENT, 1.2), ("plan", lexicon.PLAN, 1.0),
                   ("follow_up", lexicon.FOLLOW_UP, 3.0), ("allergies", lexicon.ALLERGY, 3.0))
_PATIENT_CUES = (("allergies", lexicon.ALLERGY, 3.0), ("medications", lexicon.MEDICATION, 1.0),
                 ("history", lexicon.HISTORY, 1.0), ("vitals", lexicon.VITALS, 0.5))
_EXAM_START = re.compile(r"\b(?:physical exam|examine you|take a look|do (?:a|my) (?:quick )?exam|"
                         r"on (?:my|your|physical) exam(?:ination)?)\b", re.I)
_PLAN_START = re.compile(r"\b(?:my (?:assessment|impression|plan)|for your (?:first )?problem|"
                         r"in terms of|let's talk about|what I want to do|treatment plan|my diagnosis)\b", re.I)
_PHASE_BONUS = {"history": {"hpi": 0.5}, "exam": {"exam": 1.5, "vitals": 0.5},
                "plan": {"assessment": 1.0, "plan": 1.0, "follow_up": 0.5}}


# The answer word of a reply; what follows stands alone. "No," only with its comma: not the "no" of "no pain".
_ANSWER_WORD = re.compile(r"^(?:(?:yes|yeah|yep)\b[,\s]*|(?:no|nope)\s*,\s*)", re.I)
_QUALIFIER = re.compile(r"^(?:yes|yeah|yep|I do|I have|sometimes|a little|a bit)\b[,\s]*((?:when|with|if|after|during|"
                        r"at|only|mostly|in the|on)\b[^.?!]{0,80})[.?!]?$", re.I)


@dataclass
class _Question:
    segment: str
    text: str
    symptoms: list[str]
    drugs: list[str]


def _symptoms(text: str) -> list[str]:
    found = [m.group(0).lower() for m in lexicon.SYMPTOM.finditer(text)]
    return list(dict.fromkeys(found))


def _drugs(text: str) -> list[str]:
    found = [m.group(0) for p in (lexicon.DRUGS, lexicon.DRUG_SUFFIX) for m in p.finditer(text)]
    return list(dict.fromkeys(d.lower() for d in found))


# Unpunctuated speech runs a question into a statement: "so how about your blood pressure have you been…"
_QUESTION_INSIDE = re.compile(r"\b(?:how about|what about|how is|how are|how's|have you|do you|did you|are you|"
                              r"were you|is there|can you|could you|would you|any questions)\b", re.I)


def is_question(text: str) -> bool:
    return text.rstrip().endswith("?") or bool(lexicon.QUESTION_START.match(text))


def split_question(text: str) -> tuple[str, str]:
    """(statement, question) of an unpunctuated sentence that runs into a question; ("", text) or
    (text, "") when it is one or the other."""
    m = _QUESTION_INSIDE.search(text)
    if is_question(text) or (m is not None and m.start() == 0):
        return "", text
    if m is None or re.search(r"[.!?]\s+\S", text):
        return text, ""
    return text[:m.start()].rstrip(" ,") + ".", text[m.start():]


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in lexicon.STOP]


_CLINICAL = (lexicon.SYMPTOM, lexicon.ASSESSMENT, lexicon.EXAM, lexicon.RESULTS, lexicon.DRUGS, lexicon.ALLERGY)


def is_content(text: str) -> bool:
    if lexicon.META_TALK.match(text):
        return False
    cw = content_words(text)
    short_but_clinical = len(cw) == 2 and any(p.search(text) for p in _CLINICAL)
    if len(cw) < 3 and not short_but_clinical and not (lexicon.NUMBER.search(text) and cw):
        return False
    return not (lexicon.SOCIAL_TALK.search(text) and len(cw) < 6)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def required(text: str) -> bool:
    """Medications, doses, vital signs with a value, allergies and follow-up are never cut."""
    return bool(lexicon.DOSE.search(text) or lexicon.DRUGS.search(text) or lexicon.ALLERGY.search(text)
                or lexicon.FOLLOW_UP.search(text) or (lexicon.VITALS.search(text) and lexicon.NUMBER.search(text)))


def _cue_scores(sentence: str, cues: tuple[tuple[str, re.Pattern[str], float], ...], hpi: float) -> dict[str, float]:
    """Each kind's score from its cues (at most three matches of one count), starting from `hpi`."""
    scores = {"hpi": hpi}
    for kind, pattern, weight in cues:
        hits = len(pattern.findall(sentence))
        if hits:
            scores[kind] = scores.get(kind, 0.0) + weight * min(hits, 3)
    return scores


def _score(text: str, kind: str, role: str) -> float:
    cw = content_words(text)
    cues = sum(bool(p.search(text)) for p in (lexicon.SYMPTOM, lexicon.EXAM, lexicon.RESULTS, lexicon.PLAN,
                                              lexicon.ASSESSMENT, lexicon.HISTORY, lexicon.MEDICATION))
    score = len(cw) + 2.0 * cues + 2.0 * len(lexicon.NUMBER.findall(text))
    if len(cw) > 30:
        score -= (len(cw) - 30) * 0.5
    if role == CLINICIAN and kind == "hpi":
        score *= 0.5  # the clinician restating the history: the patient's own words come first
    return score / 2 + len(cw) / 2


class StatementBuilder:
    """Walks a visit in order; `audience` "clinician" writes in the third person, "patient" in the second."""

    def __init__(self, roles: dict[str, SpeakerRole], facts: Facts, audience: str = "clinician") -> None:
        self.roles = roles
        self.subj, self.obj, self.poss = facts.pronoun
        self.audience = audience
        self.phase = "history"
        self.out: list[Statement] = []
        self._question: _Question | None = None

    def add(self, segment: Segment, sentences: list[str], order: float) -> None:
        role = self.roles[segment.speaker].role
        question, self._question = self._question, None
        for i, sentence in enumerate(sentences):
            pos = order + i / 100
            if role == CLINICIAN:
                self._clinician(segment, sentence, pos)
            elif role == PATIENT:
                if i == 0 and question is not None and self._answer(question, segment, sentence, pos):
                    continue
                self._patient(segment, sentence, pos)

    def _clinician(self, seg: Segment, sentence: str, pos: float) -> None:
        if _EXAM_START.search(sentence):
            self.phase = "exam"
        elif _PLAN_START.search(sentence) or (self.phase == "exam" and lexicon.ASSESSMENT.search(sentence)):
            self.phase = "plan"
        sentence, question = split_question(sentence)
        if question:
            symptoms, drugs = _symptoms(question), _drugs(question)
            if symptoms or drugs:
                self._question = _Question(seg.id, question, symptoms, drugs)
        if not sentence or not is_content(sentence):
            return
        scores = _cue_scores(sentence, _CLINICIAN_CUES, hpi=0.4)
        if "vitals" in scores and not lexicon.NUMBER.search(sentence):
            scores["vitals"] -= 2.0
        for kind, bonus in _PHASE_BONUS[self.phase].items():
            if kind in scores:
                scores[kind] += bonus
        if lexicon.DOSE.search(sentence) or _drugs(sentence):
            scores["plan"] = scores.get("plan", 0.0) + (1.0 if self.phase != "history" else 0.0)
            scores["medications"] = scores.get("medications", 0.0) + (1.0 if self.phase == "history" else 0.0)
        kind = max(scores, key=lambda k: scores[k])
        if self.audience == "patient":
            if kind not in ("plan", "follow_up", "assessment", "results", "medications", "allergies"):
                return
            text = rewrite.clinician_to_second(sentence)
        else:
            text = rewrite.clinician_to_third(sentence, self.subj, self.obj, self.poss)
        self._emit(text, (seg.id,), kind, pos, CLINICIAN)

    def _patient(self, seg: Segment, sentence: str, pos: float) -> None:
        sentence = _ANSWER_WORD.sub("", sentence)
        sentence = sentence[:1].upper() + sentence[1:]
        if is_question(sentence) or not is_content(sentence):
            return
        scores = _cue_scores(sentence, _PATIENT_CUES, hpi=1.0)
        if _drugs(sentence) or lexicon.DOSE.search(sentence):
            scores["medications"] = scores.get("medications", 0.0) + 2.0
        kind = max(scores, key=lambda k: scores[k])
        if self.audience == "patient":
            if kind not in ("medications", "allergies"):  # instructions: what to take and avoid, not history
                return
            text = rewrite.patient_to_second(sentence)
        else:
            text = rewrite.patient_to_third(sentence, self.subj, self.obj, self.poss)
        self._emit(text, (seg.id,), kind, pos, PATIENT)

    def _answer(self, q: _Question, seg: Segment, sentence: str, pos: float) -> bool:
        """'Any fever or chills?' 'No.' → 'Denies fever and chills.' True when the answer was used up."""
        if self.audience == "patient":
            return False
        negative = bool(lexicon.NEGATIVE_ANSWER.match(sentence))
        positive = not negative and bool(lexicon.POSITIVE_ANSWER.match(sentence))
        if not (negative or positive):
            return False
        evidence = (q.segment, seg.id)
        qualifier = _QUALIFIER.match(sentence) if positive else None
        if q.symptoms:
            text = f"{'Denies' if negative else 'Reports'} {_join(q.symptoms)}"
            if qualifier:  # "Yes, when I climb stairs." → "Reports shortness of breath when she climbs stairs."
                text += " " + rewrite.patient_to_third(qualifier.group(1), self.subj, self.obj, self.poss).lower()
            self._emit(text + ".", evidence, "ros", pos, PATIENT, score_bonus=3.0)
            if qualifier:
                return True
        if q.drugs and positive:
            subject = self.subj[:1].upper() + self.subj[1:]
            self._emit(f"{subject} is taking {_join(q.drugs)}.", evidence, "medications", pos, PATIENT)
        # A bare yes/no is used up; a longer answer still says something of its own.
        return len(content_words(sentence)) < 3

    def _emit(self, text: str, evidence: tuple[str, ...], kind: str, pos: float, role: str,
              score_bonus: float = 0.0) -> None:
        self.out.append(Statement(text=text, evidence=evidence, kind=kind, order=pos,
                                  score=_score(text, kind, role) + score_bonus, required=required(text)))
