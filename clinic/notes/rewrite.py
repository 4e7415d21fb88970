"""Speech → note voice. The patient's "I" becomes the patient in the third person; the clinician's
"you" (said to the patient) becomes the patient too, while the clinician's own "I"/"we" stay, as
clinicians write "I advised…". For patient instructions the clinician's "you" stays (second person)."""

from __future__ import annotations

import re

from clinic.notes.lexicon import wordset

_NO_INFLECT = wordset("""am is are was were will would can could should shall may might must did had have has do
does been being just also really still never always usually actually kind sort even only probably definitely
certainly totally kinda already ever not took went got felt saw said came made fell broke thought knew told
gave ran ate drank slept woke left kept found began hurt put let set cut hit quit""")
_IRREGULAR = {"have": "has", "do": "does", "go": "goes", "am": "is", "are": "is", "don't": "doesn't",
              "haven't": "hasn't", "aren't": "isn't", "'m": "'s", "were": "was", "weren't": "wasn't"}
_ADVERB = re.compile(r"^(?:just|also|really|still|never|always|usually|actually|only|even|probably|sometimes|"
                     r"definitely|certainly|already|ever|often|normally|first|then|kind|sort|of)$", re.I)


def _third_person(verb: str) -> str:
    low = verb.lower()
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    if low in _NO_INFLECT or low.endswith(("ed", "ing")) or not low.isalpha():
        return verb
    if low.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if low.endswith("y") and len(low) > 2 and low[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _subject(sentence: str, subject: str) -> str:
    """Replace each subject "I" and make the verb after it (past any adverbs) agree."""
    out = sentence
    for m in reversed(list(re.finditer(r"\bI\b(?!')", out))):
        tokens = out[m.end():].split(" ")  # tokens[0] is "" (the space after "I")
        i = 1
        while i < len(tokens) - 1 and _ADVERB.match(tokens[i]):
            i += 1
        if i < len(tokens):
            word = tokens[i].rstrip(",;:.!?")
            tokens[i] = _third_person(word) + tokens[i][len(word):]
        out = out[:m.start()] + subject + " ".join(tokens)
    return out


_PATIENT_CONTRACTIONS = [
    (r"\bI'm\b", "{s} is"), (r"\bI've\b", "{s} has"), (r"\bI'd\b", "{s} would"), (r"\bI'll\b", "{s} will"),
    (r"\bI am\b", "{s} is"), (r"\bI was\b", "{s} was"), (r"\bmyself\b", "{r}"), (r"\bmy\b", "{p}"),
    (r"\bmine\b", "{p}"), (r"\bme\b", "{o}"),
]
_PLURAL = {"they are": "they are"}


def patient_to_third(sentence: str, subj: str, obj: str, poss: str) -> str:
    """'I feel tired and my knee hurts' → 'She feels tired and her knee hurts'."""
    refl = {"he": "himself", "she": "herself"}.get(subj, "themselves" if subj == "they" else "themself")
    out = sentence
    for pattern, sub in _PATIENT_CONTRACTIONS:
        out = re.sub(pattern, sub.format(s=subj, r=refl, p=poss, o=obj), out)
    out = _subject(out, subj)
    return _capitalise(out)


_YOU = [
    (r"\byou're\b", "{s} is"), (r"\byou've\b", "{s} has"), (r"\byou'll\b", "{s} will"), (r"\byou'd\b", "{s} would"),
    (r"\byou are\b", "{s} is"), (r"\byou were\b", "{s} was"), (r"\byourself\b", "{r}"), (r"\byour\b", "{p}"),
]
_YOU_SUBJECT_BEFORE = re.compile(r"(?:^|[,;]|\b(?:and|but|if|that|when|because|so|since|until|as|or|where|while|"
                                 r"unless|before|after|think|know|guess|hope|see|sure|like|seems)\b)\s*$", re.I)


# "you" followed by one of these is the subject even where the words before do not say so.
_VERB_AFTER = re.compile(r"\s+(?:have|had|are|were|can|could|should|will|would|need|needs|feel|felt|know|take|took|"
                         r"get|got|go|went|do|did|don't|didn't|haven't|might|may|must|still|also|just|never|ever|"
                         r"mentioned|noticed|tried|started|said|seem|want|wanted|use|used|continue)\b", re.I)


def clinician_to_third(sentence: str, subj: str, obj: str, poss: str) -> str:
    """'Your lungs are clear and I want you to rest' → 'His lungs are clear and I want him to rest'."""
    refl = {"he": "himself", "she": "herself"}.get(subj, "themself")
    out = sentence
    for pattern, sub in _YOU:
        out = re.sub(pattern, sub.format(s=subj, r=refl, p=poss), out, flags=re.I)
    pieces = re.split(r"\b([Yy]ou)\b", out)
    rebuilt = pieces[0]
    for i in range(1, len(pieces), 2):
        after = pieces[i + 1]
        if _YOU_SUBJECT_BEFORE.search(rebuilt) or _VERB_AFTER.match(after):
            m = re.match(r"(\s+)(\S+)", after)
            if m:
                after = f"{m.group(1)}{_agree(m.group(2))}{after[m.end():]}"
            rebuilt += subj + after
        else:
            rebuilt += obj + after
    return _capitalise(rebuilt)


def _agree(word: str) -> str:
    return word if _ADVERB.match(word) else _third_person(word)


def clinician_to_second(sentence: str) -> str:
    """For patient instructions: the clinician's 'I' becomes 'we' (the care team); 'you' stays."""
    out = re.sub(r"\bI'm\b", "we're", sentence)
    out = re.sub(r"\bI've\b", "we've", out)
    out = re.sub(r"\bI'll\b", "we'll", out)
    out = re.sub(r"\bI'd\b", "we'd", out)
    out = re.sub(r"\bI am\b", "we are", out)
    out = re.sub(r"\bI was\b", "we were", out)
    out = re.sub(r"\bI\b", "we", out)
    out = re.sub(r"\bmy\b", "our", out)
    return _capitalise(out)


def patient_to_second(sentence: str) -> str:
    """For patient instructions: 'I take lisinopril' → 'You take lisinopril'."""
    out = sentence
    for pattern, sub in ((r"\bI'm\b", "you're"), (r"\bI've\b", "you've"), (r"\bI'll\b", "you'll"),
                         (r"\bI'd\b", "you'd"), (r"\bI am\b", "you are"), (r"\bI was\b", "you were"),
                         (r"\bmyself\b", "yourself"), (r"\bmy\b", "your"), (r"\bmine\b", "yours"),
                         (r"\bme\b", "you"), (r"\bI\b", "you")):
        out = re.sub(pattern, sub, out)
    return _capitalise(out)


def _capitalise(s: str) -> str:
    s = re.sub(r"\b(the patient)('s)? (is|has|was)\b", r"\1\2 \3", s)
    return s[:1].upper() + s[1:] if s else s
