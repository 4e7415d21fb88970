"""Plain language for patient instructions: a few clinical words swapped for everyday ones, and the
Flesch-Kincaid grade level to check the result (0.39·words/sentence + 11.8·syllables/word − 15.59)."""

from __future__ import annotations

import re

PLAIN = {
    "hypertension": "high blood pressure", "hyperlipidemia": "high cholesterol", "myocardial infarction":
    "heart attack", "edema": "swelling", "dyspnea": "shortness of breath", "analgesic": "pain medicine",
    "anti-inflammatory": "medicine for swelling", "bilateral": "on both sides", "bilaterally": "on both sides",
    "orally": "by mouth", "twice daily": "two times a day", "once daily": "once a day", "prn": "when needed",
    "as needed": "when needed", "acute": "sudden", "chronic": "long-lasting", "fracture": "broken bone",
    "renal": "kidney", "cardiac": "heart", "pulmonary": "lung", "gastrointestinal": "stomach and bowel",
    "physical therapy": "exercise therapy", "subsequently": "then", "approximately": "about",
    "utilize": "use", "discontinue": "stop", "administer": "give", "initiate": "start",
    "echocardiogram": "heart ultrasound", "regurgitation": "leak", "auscultation": "listening",
    "palpation": "pressing", "ecchymosis": "bruising", "erythema": "redness", "lesion": "spot",
    "benign": "not harmful", "malignant": "cancer", "hypertensive": "high blood pressure",
    "hyperglycemia": "high blood sugar", "hypoglycemia": "low blood sugar", "diabetes mellitus": "diabetes",
    "osteoarthritis": "wear-and-tear arthritis", "nonsteroidal": "anti-swelling",
}
_PLAIN = re.compile(r"\b(?:(an?) )?(" + "|".join(sorted(map(re.escape, PLAIN), key=len, reverse=True)) + r")\b", re.I)
_VOWELS = re.compile(r"[aeiouy]+")


def plain_language(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        plain = PLAIN[m.group(2).lower()]
        if not m.group(1):
            return plain
        article = "an" if plain[0] in "aeiou" else "a"  # "an echocardiogram" → "a heart ultrasound"
        return f"{article.capitalize() if m.group(1)[0].isupper() else article} {plain}"

    return _PLAIN.sub(repl, text)


def syllables(word: str) -> int:
    w = word.lower().strip(".,;:!?'\"")
    if not w:
        return 0
    if w.isdigit():
        return max(1, len(w) // 2)  # rough: "20" is two syllables, "2" one
    count = len(_VOWELS.findall(w))
    if w.endswith("e") and not w.endswith(("le", "ee")) and count > 1:
        count -= 1
    return max(count, 1)


def flesch_kincaid_grade(text: str) -> float | None:
    """US school grade needed to read `text`; None for text without words."""
    words = re.findall(r"[A-Za-z0-9']+", text)
    if not words:
        return None
    sentences = max(1, len(re.findall(r"[.!?]+(?:\s|$)", text)))
    syl = sum(syllables(w) for w in words)
    return round(0.39 * len(words) / sentences + 11.8 * syl / len(words) - 15.59, 1)
