"""The built-in note generator on a short visit written here: evidence, grounding, routing, voice,
answered questions, what is always kept, the no-speech result and guessed speaker roles."""

from __future__ import annotations

import re

import pytest

from clinic.notes import builtin, grounding
from clinic.notes.model import NO_SPEECH_TEXT, STATUS_NO_SPEECH, STATUS_OK, Note
from clinic.notes.readability import flesch_kincaid_grade
from clinic.notes.render import render
from clinic.notes.templates import TemplateRegistry, parse
from clinic.notes.text import clean, digits, sentences
from clinic.notes.transcript import Transcript, from_payload
from tests.notes_visit import VISIT, payload

REGISTRY = TemplateRegistry()


def note_for(template: str, **kw: object) -> tuple[Note, Transcript]:
    transcript = from_payload(payload([template], **kw))  # type: ignore[arg-type]
    tpl = REGISTRY.get(template)
    assert tpl is not None
    return builtin.generate(transcript, tpl), transcript


def section(note: Note, key: str) -> str:
    [sec] = [s for s in note.sections if s.key == key]
    return " ".join(s.text for s in sec.statements)


def seg_id(n: int) -> str:
    """Id of the n-th utterance (0-based) of VISIT, as tests/notes_visit.py numbers them."""
    return f"00000000-0000-0000-0000-{n + 1:012x}"


@pytest.mark.parametrize("template", ["SOAP", "H&P", "Progress Note", "Patient Instructions"])
def test_every_sentence_cites_segments_and_every_number_drug_and_dose_is_in_them(template: str) -> None:
    note, transcript = note_for(template)
    assert note.status == STATUS_OK and note.statements
    ids = {s.id for s in transcript.segments}
    for st in note.statements:
        assert st.evidence and set(st.evidence) <= ids, st
    g = grounding.check(note, transcript)
    assert g.evidence_share == 1.0 and g.facts > 0 and g.supported_share == 1.0, g.unsupported


def test_no_sentence_the_visit_did_not_say() -> None:
    """Apart from the fact lines and Denies/Reports, each sentence's words come from its own segments
    (pronouns and the verb endings the third person needs aside): no boiler-plate."""
    note, transcript = note_for("SOAP")
    spoken = {s.id: set(re.findall(r"[a-z0-9]+", clean(s.text).lower())) for s in transcript.segments}
    voice = {"she", "her", "hers", "herself", "is", "has", "was", "does", "doesn"}
    for st in note.statements:
        if st.kind == "chief_complaint" or st.text.startswith(("Denies", "Reports")):
            continue
        source = set().union(*(spoken[i] for i in st.evidence))
        extra = {w for w in re.findall(r"[a-z0-9]+", st.text.lower()) if w not in source and w not in voice
                 and w.rstrip("s") not in source}
        assert not extra, (st.text, extra)


def test_sections_intro_and_third_person() -> None:
    note, _ = note_for("H&P")
    assert section(note, "chief_complaint") == "Cough."
    hpi = section(note, "hpi")
    assert hpi.startswith("Maria is a 45-year-old female who presents today for a cough.")
    assert "She coughs mostly at night and it keeps her awake." in hpi  # "I, I cough … me awake"
    assert section(note, "medications") == "She takes lisinopril 20 mg a day for her blood pressure."
    assert section(note, "allergies") == "She is allergic to penicillin, it gives her hives."
    assert section(note, "vitals") == "Her blood pressure is 130/85 and her temperature is 98.6."
    assert "wheezing in her right lung" in section(note, "exam")
    assert "acute bronchitis" in section(note, "assessment_plan")
    assert "albuterol inhaler, 2 puffs every 4 hours" in section(note, "assessment_plan")
    assert section(note, "instructions") == "Come back in 2 weeks if the cough is not better."
    text = render(note, REGISTRY.get("H&P"), "text")
    assert "HISTORY OF PRESENT ILLNESS" in text and not re.search(r"\b(I take|my blood|uh|um)\b", text)
    assert "Good morning" not in text and "thank you" not in text.lower()  # non-content turns dropped


def test_answered_symptom_questions_become_denies_and_reports_with_both_segments() -> None:
    note, _ = note_for("SOAP")
    by_text = {s.text: s.evidence for s in note.statements}
    assert by_text["Denies fever and chills."] == (seg_id(5), seg_id(6))
    assert by_text["Reports shortness of breath when she climbs the stairs at work."] == (seg_id(7), seg_id(8))


def test_medications_doses_vitals_allergies_and_follow_up_survive_a_tiny_budget() -> None:
    text = re.sub(r"budget_(words|share|min_words) = .*\n", "", _builtin_text("soap.j2"))
    tiny = parse(text.replace("[[sections]]", "budget_words = 20\n\n[[sections]]", 1), "tiny")
    assert tiny.budget_for(10_000) == 20
    note = builtin.generate(from_payload(payload(["SOAP"])), tiny)
    text = " ".join(s.text for s in note.statements)
    for must in ("lisinopril 20 mg", "penicillin", "130/85", "98.6", "albuterol", "2 puffs", "in 2 weeks"):
        assert must in text, must
    assert "keeps her awake" not in text  # optional history went to the budget


def test_budget_follows_the_length_of_the_visit_within_its_bounds() -> None:
    soap = REGISTRY.get("SOAP")
    assert soap is not None and (soap.budget_share, soap.budget_min_words, soap.budget_words) == (0.35, 300, 600)
    assert [soap.budget_for(n) for n in (100, 1000, 1500, 10_000)] == [300, 350, 525, 600]


def _builtin_text(name: str) -> str:
    from importlib import resources

    return resources.files("clinic.notes").joinpath("templates", name).read_text("utf-8")


@pytest.mark.parametrize("visit", [[], [("Patient", "   "), ("Clinician", "...")]])
def test_no_speech_gives_an_explicit_result_not_a_note(visit: list[tuple[str, str]]) -> None:
    note, _ = note_for("SOAP", visit=visit)
    assert note.status == STATUS_NO_SPEECH and note.message == NO_SPEECH_TEXT and not note.statements
    assert render(note, REGISTRY.get("SOAP"), "text") == NO_SPEECH_TEXT + "\n"


def test_greetings_only_is_no_clinical_content() -> None:
    note, _ = note_for("SOAP", visit=[("Clinician", "Hi, how are you?"), ("Patient", "Good, thanks.")])
    assert note.status == STATUS_NO_SPEECH and "No clinical content" in note.message


def test_speaker_n_roles_are_guessed_from_cues_and_marked_as_guesses() -> None:
    # The patient speaks first and has label S1, so neither order nor label decides.
    visit = [("Patient", "Hi doctor."), *VISIT]
    note, _ = note_for("SOAP", visit=visit, labels={"Patient": "S1", "Clinician": "S2"},
                       speakers={"S1": "Speaker 1", "S2": "Speaker 2"})
    roles = {r.label: (r.name, r.role, r.guessed) for r in note.roles}
    assert roles == {"S2": ("Speaker 2", "clinician", True), "S1": ("Speaker 1", "patient", True)}
    named, _ = note_for("SOAP")
    assert [s.text for s in note.statements] == [s.text for s in named.statements]
    assert all(not r.guessed for r in named.roles)


def test_a_reviewer_sets_the_clinician_and_sentences_follow_the_roles() -> None:
    unnamed = {"S1": "Speaker 1", "S2": "Speaker 2"}
    guessed, transcript = note_for("SOAP", speakers=unnamed)
    assert {r.label: (r.role, r.guessed) for r in guessed.roles} == {"S1": ("clinician", True), "S2": ("patient", True)}
    soap = REGISTRY.get("SOAP")
    assert soap is not None
    chosen = builtin.generate(transcript, soap, clinician="Speaker 2")
    roles = {r.label: (r.role, r.guessed, r.set_by_reviewer) for r in chosen.roles}
    assert roles == {"S2": ("clinician", False, True), "S1": ("patient", True, False)}
    # Written exactly as if the device had named them so; the plan spoken by S1 is no longer the clinician's.
    named, _ = note_for("SOAP", speakers={"S1": "Patient", "S2": "Clinician"})
    assert [(s.kind, s.text) for s in chosen.statements] == [(s.kind, s.text) for s in named.statements]
    assert [(s.kind, s.text) for s in chosen.statements] != [(s.kind, s.text) for s in guessed.statements]
    assert "albuterol" in section(guessed, "plan") and "albuterol" not in section(chosen, "plan")
    assert builtin.generate(transcript, soap, clinician="S2").roles == chosen.roles  # a label works too
    with pytest.raises(ValueError, match="'Speaker 3' is not a speaker"):
        builtin.generate(transcript, soap, clinician="Speaker 3")


def test_patient_instructions_are_plain_second_person_and_graded() -> None:
    note, _ = note_for("Patient Instructions")
    text = " ".join(s.text for s in note.statements)
    assert "You take lisinopril 20 mg a day" in text and "sudden bronchitis" in text  # "acute" made plain
    assert not re.search(r"\b(she|her|the patient)\b", text, re.I)
    assert note.reading_grade == flesch_kincaid_grade(text) and note.reading_grade is not None
    assert note.reading_grade <= 8 and not note.warnings


def test_flesch_kincaid_grade_by_hand() -> None:
    # 2 sentences, 11 words, 15 syllables (med-i-cine, ev-er-y): 0.39*11/2 + 11.8*15/11 - 15.59 = 2.645
    assert flesch_kincaid_grade("The cat sat on the mat. Take your medicine every day.") == 2.6
    assert flesch_kincaid_grade("") is None


def test_cleaning_and_number_words() -> None:
    assert clean("uh , about , about two weeks now . i , i , i cough") == "about 2 weeks now. I cough"
    assert clean("i do n't know , i'm gon na ex- exercise") == "I don't know, I'm going to exercise"
    assert digits("lisinopril twenty milligrams, one twenty over eighty, ninety eight point six") == \
        "lisinopril 20 mg, 120/80, 98.6"
    assert digits("it's my right one") == "it's my right one"


def test_unpunctuated_speech_statement_kept_question_dropped_answer_word_dropped() -> None:
    visit = [("Clinician", "on your knee exam there is no effusion and no pain to palpation is there any swelling "
                           "when you walk"),
             ("Patient", "yes it swells up after I walk a mile"),
             ("Clinician", "how is your blood pressure at home"),
             ("Patient", "yes I take my amlodipine every morning and I think it runs around one twenty over seventy")]
    note, _ = note_for("SOAP", visit=visit)
    texts = [s.text for s in note.statements]
    assert "On the patient's knee exam there is no effusion and no pain to palpation." in texts
    assert "Reports swelling when the patient walk." not in texts and not any("is there" in t for t in texts)
    assert "It swells up after the patient walks a mile." in texts  # "yes" is the answer, not the statement
    assert not any("blood pressure at home" in t for t in texts)
    assert "The patient takes the patient's amlodipine every morning and the patient thinks it runs around " \
           "120/70." in texts


def test_long_unpunctuated_turns_are_cut_into_clauses() -> None:
    """ASR without punctuation: cut at discourse markers, then before a conjunction opening a clause."""
    turn = ("so your lungs are clear to auscultation bilaterally and your heart has a regular rate and rhythm "
            "without murmurs but your right wrist is swollen and tender to palpation over the distal radius "
            "okay and I want you to keep it elevated")
    assert sentences(clean(turn)) == [
        "Your lungs are clear to auscultation bilaterally.",
        "Your heart has a regular rate and rhythm without murmurs.",
        "Your right wrist is swollen and tender to palpation over the distal radius.",
        "I want you to keep it elevated.",
    ]


def test_grounding_flags_numbers_drugs_and_doses_the_cited_segments_lack() -> None:
    from clinic.notes.model import NoteSection, Statement

    note, transcript = note_for("SOAP")
    meds = seg_id(10)  # "I take lisinopril twenty milligrams a day for my blood pressure."
    note.sections = [NoteSection("x", "X", [
        Statement("She takes lisinopril 20 mg a day.", (meds,), "medications"),  # "twenty milligrams"
        Statement("She takes lisinopril 40 mg and metformin.", (meds,), "medications"),
        Statement("Temperature 98.6.", (seg_id(0),), "vitals"),  # right number, wrong segment cited
        Statement("Invented line.", (), "hpi"),
    ])]
    g = grounding.check(note, transcript)
    assert (g.sentences, g.with_evidence) == (4, 3)
    assert g.facts == 8 and g.supported == 4  # 20mg, 20, lisinopril (twice)
    assert [u.split(" in ")[0] for u in g.unsupported] == ["'40mg'", "'40'", "'metformin'", "'98.6'"]


def test_third_person_rewrite_agrees_every_subject() -> None:
    from clinic.notes.rewrite import clinician_to_third, patient_to_third

    assert patient_to_third("I don't know, I don't really worry about it.", "he", "him", "his") == \
        "He doesn't know, he doesn't really worry about it."
    assert patient_to_third("I took ibuprofen and I think it helps my knee.", "she", "her", "her") == \
        "She took ibuprofen and she thinks it helps her knee."
    assert clinician_to_third("I think you have arthritis, so I want you to rest your knee.", "she", "her", "her") == \
        "I think she has arthritis, so I want her to rest her knee."


def test_patient_instructions_shed_long_optional_sentences_to_meet_their_reading_level() -> None:
    long_one = ("I think this represents an exacerbation of your underlying inflammatory arthritis, "
                "presumably precipitated by considerable occupational overexertion and inadequate "
                "anti-inflammatory medication adherence over the preceding several weeks.")
    visit = [("Clinician", long_one), ("Clinician", "I think your knee is swollen from the arthritis."),
             ("Clinician", "Take ibuprofen 400 mg three times a day with food."),
             ("Clinician", "Show me the knee x-ray."), ("Clinician", "Come back in two weeks.")]
    note, _ = note_for("Patient Instructions", visit=visit)
    texts = [s.text for s in note.statements]
    assert texts == ["We think your knee is swollen from the arthritis.",
                     "Take ibuprofen 400 mg 3 times a day with food.", "Come back in 2 weeks."]
    assert note.reading_grade is not None and note.reading_grade <= 8 and not note.warnings
    # Without a reading level to meet, the long sentence stays (it is within the budget).
    free = parse(re.sub(r"reading_grade_max = .*\n", "", _builtin_text("patient_instructions.j2")), "free")
    unchecked = builtin.generate(from_payload(payload(["x"], visit=visit)), free)
    assert any("exacerbation" in s.text for s in unchecked.statements)


def test_plain_language_keeps_the_article_right() -> None:
    from clinic.notes.readability import plain_language

    assert plain_language("Order an echocardiogram for the hypertension.") == \
        "Order a heart ultrasound for the high blood pressure."
