"""The LLM path without a server: hand-written model answers are parsed and checked against a real
transcript (the visit of notes_visit.py); the request plan splits long notes without losing a
statement. The server itself is exercised in test_notes_llm_server.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clinic.cli import main
from clinic.config import LlmConfig
from clinic.notes import builtin
from clinic.notes.assistant import NO_LLM, assist
from clinic.notes.llm.generator import generate as llm_generate
from clinic.notes.llm.generator import plan
from clinic.notes.llm.parse import parse
from clinic.notes.llm.prompts import Aliases, note_messages
from clinic.notes.llm.verify import Verifier
from clinic.notes.model import Note, NoteSection
from clinic.notes.render import render
from clinic.notes.templates import Template, TemplateRegistry
from clinic.notes.transcript import from_segments
from tests import notes_visit
from tests.broker import free_port

TRANSCRIPT = from_segments(notes_visit.segments())
ALIASES = Aliases.of(TRANSCRIPT)
SEG = [s.id for s in TRANSCRIPT.segments]  # SEG[4] is alias s5

# What a small model wrote for this visit: some faithful sentences, some invented.
ANSWER = """Here is the note:
## Subjective
- Maria reports a cough for 2 weeks, worse at night. [s5]
- She takes lisinopril 20 mg daily. [s11]
- She takes lisinopril 40 mg daily. [s11]
## Objective
- Blood pressure 130/85, temperature 98.6. [s14]
- Hemoglobin A1c was 9.2. [s14]
- Wheezing in the right lung. [s99]
**Plan**
1. Albuterol inhaler, two puffs every four hours as needed. [S15]
2. Start amoxicillin. [s15]
3. Follow up in 2 weeks.
"""


def _checked() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    parsed = parse(ANSWER, ["Subjective", "Objective", "Plan"])
    assert parsed.unplaced == []  # "Here is the note:" is a label, not a sentence
    verifier = Verifier(TRANSCRIPT, ALIASES)
    return {d.text: (st.evidence, st.flags) for title in parsed.sections for d in parsed.sections[title]
            for st in [verifier.statement(d, "hpi", 0.0)]}


def test_faithful_sentences_pass_with_their_real_segment_ids() -> None:
    out = _checked()
    assert out["Maria reports a cough for 2 weeks, worse at night."] == ((SEG[4],), ())
    assert out["She takes lisinopril 20 mg daily."] == ((SEG[10],), ())
    assert out["Blood pressure 130/85, temperature 98.6."] == ((SEG[13],), ())
    # Number words are read as digits; an upper-case alias is the same alias.
    assert out["Albuterol inhaler, two puffs every four hours as needed."] == ((SEG[14],), ())


def test_invented_numbers_drugs_and_ids_are_flagged() -> None:
    out = _checked()
    assert out["She takes lisinopril 40 mg daily."][1] == ("'40mg' is not in the segments it cites",
                                                          "'40' is not in the segments it cites")
    assert out["Hemoglobin A1c was 9.2."][1] == ("'9.2' is not in the segments it cites",)
    assert out["Start amoxicillin."][1] == ("'amoxicillin' is not in the segments it cites",)
    evidence, flags = out["Wheezing in the right lung."]
    assert evidence == () and flags == ("cites 's99', which is not a segment of this transcript",)
    evidence, flags = out["Follow up in 2 weeks."]
    assert evidence == () and flags[0] == "cites no segment"


def test_a_number_is_checked_against_the_cited_segment_not_the_whole_visit() -> None:
    # 20 mg was said (s11), but not in the segment this sentence cites.
    d = parse("- She takes lisinopril 20 mg daily. [s14]", ["Plan"]).sections["Plan"][0]
    st = Verifier(TRANSCRIPT, ALIASES).statement(d, "plan", 0.0)
    assert st.evidence == (SEG[13],)
    assert "'20mg' is not in the segments it cites" in st.flags


def test_the_built_in_note_echoed_verbatim_gets_no_flags() -> None:
    """No false alarms: the facts the model is given, copied back in the asked format, all pass."""
    template = TemplateRegistry("").get("SOAP")
    assert template is not None
    note = builtin.generate(TRANSCRIPT, template)
    answer = "\n".join(f"- {st.text} [{', '.join(ALIASES.to_alias[e] for e in st.evidence)}]"
                       for st in note.statements)
    verifier = Verifier(TRANSCRIPT, ALIASES)
    checked = [verifier.statement(d, "", 0.0) for d in parse(answer, ["All"]).sections["All"]]
    assert len(checked) == len(note.statements)
    assert [(c.text, c.evidence, c.flags) for c in checked] == [(s.text, s.evidence, ()) for s in note.statements]


def test_flags_are_listed_on_the_rendered_note_and_kept_in_its_body() -> None:
    template = TemplateRegistry("").get("SOAP")
    assert template is not None
    d = parse("- Hemoglobin A1c was 9.2. [s14]", ["Objective"]).sections["Objective"][0]
    st = Verifier(TRANSCRIPT, ALIASES).statement(d, "exam", 0.0)
    note = Note("SOAP", "llm", "1.0", "ok", sections=[NoteSection("objective", "Objective", [st])])
    text = render(note, template, "text")
    assert "CHECK BEFORE SIGNING\n- Hemoglobin A1c was 9.2. ('9.2' is not in the segments it cites)" in text
    body = note.to_dict()
    assert body["sections"][0]["sentences"][0]["flags"] == ["'9.2' is not in the segments it cites"]
    assert Note.from_dict(body).statements[0].flags == st.flags  # what the web view reads back


def test_a_long_note_is_sent_in_parts_of_whole_statements_none_lost() -> None:
    template = TemplateRegistry("").get("H&P")
    assert template is not None
    note = builtin.generate(TRANSCRIPT, template)
    part_words = 12  # this short visit's note then needs parts, as a long visit's would at 250
    requests = plan(note, template, LlmConfig(part_words=part_words).part_words)
    sent = [st for parts in requests for p in parts for st in p.statements]
    assert sent == note.statements  # every statement once, in order
    for parts in requests:
        assert len(parts) == 1  # per section or part of one
        words = sum(len(st.text.split()) for st in parts[0].statements)
        assert words <= part_words or len(parts[0].statements) == 1
    assert any(p.parts > 1 for parts in requests for p in parts)  # a section did need parts
    # A short note is one request with all its sections.
    short = builtin.generate(TRANSCRIPT, template)
    assert len(plan(short, template, 10_000)) == 1


def _soap() -> Template:
    template = TemplateRegistry("").get("SOAP")
    assert template is not None
    return template


def test_the_prompt_carries_each_statement_with_its_alias_and_the_section_instructions() -> None:
    template = _soap()
    note = builtin.generate(TRANSCRIPT, template)
    [parts] = plan(note, template, 10_000)
    system, user = note_messages(template.name, template.audience, parts, ALIASES)
    assert system.role == "system" and "square brackets" in system.content and "## <section title>" in system.content
    for sec in template.sections:
        if any(p.key == sec.key for p in parts):
            assert f"## {sec.title}\nInstruction: {sec.instruction}\nFacts:" in user.content
    for st in note.statements:
        assert f"[{', '.join(ALIASES.to_alias[e] for e in st.evidence)}] {st.text}" in user.content
    assert SEG[0] not in user.content  # the model sees aliases, never the UUIDs


def test_a_dead_server_gives_the_built_in_note_marked_as_a_fallback() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    note = llm_generate(TRANSCRIPT, _soap(), LlmConfig(url=url, timeout_s=5))
    assert note.generator == "builtin" and note.status == "ok" and note.statements
    assert note.fallback.startswith(f"cannot reach {url}/chat/completions")
    assert f"LLM fallback: {note.fallback}; this is the built-in note" in note.warnings
    assert note.to_dict()["fallback"] == note.fallback
    assert f"Written by the built-in generator: {note.fallback}." in render(note, _soap(), "text")


def test_no_llm_configured_is_a_plain_message() -> None:
    note = builtin.generate(TRANSCRIPT, _soap())
    result = assist("expand", note.to_dict(), TRANSCRIPT, LlmConfig(), section="Subjective")
    assert (result.ok, result.message, result.sentences) == (False, NO_LLM, [])
    assert llm_generate(TRANSCRIPT, _soap(), LlmConfig()).fallback == "no LLM is configured ([llm] url is empty)"


def test_assistant_refuses_unknown_commands_and_sections_by_name() -> None:
    note = builtin.generate(TRANSCRIPT, _soap())
    cfg = LlmConfig(url=f"http://127.0.0.1:{free_port()}/v1")
    assert assist("poem", note, TRANSCRIPT, cfg).message == ("Unknown command 'poem' (one of expand, differentials, "
                                                            "concise, patient).")
    assert assist("expand", note, TRANSCRIPT, cfg, section="Billing").message.startswith(
        "The note has no section 'Billing' (it has: Chief Complaint, Subjective,")
    assert assist("expand", note, TRANSCRIPT, cfg).message.startswith("Expand needs a section")
    dead = assist("concise", note, TRANSCRIPT, cfg, section="plan")
    assert not dead.ok and dead.section == "Plan" and dead.message.startswith("The LLM gave no answer: cannot reach")


def test_cli_generate_with_an_unreachable_llm_is_one_line_exit_2(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    config = tmp_path / "clinic.toml"
    config.write_text(f'[llm]\nurl = "{url}"\ntimeout_s = 5\n')
    visit = tmp_path / "visit.json"
    visit.write_text(json.dumps(notes_visit.segments()))
    assert main(["--config", str(config), "generate", str(visit), "--generator", "llm"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"clinic: the LLM wrote no note: cannot reach {url}/chat/completions: [Errno 111] Connection "
                   "refused (--generator builtin writes one without it)\n")
    assert main(["generate", str(visit), "--generator", "llm"]) == 2  # no [llm] url at all
    assert "no LLM is configured ([llm] url is empty)" in capsys.readouterr().err
    assert main(["assist", "some-session", "--command", "concise"]) == 2
    assert capsys.readouterr().err == f"clinic: {NO_LLM}\n"
    missing_store = tmp_path / "none" / "clinic.db"
    config.write_text(f'[store]\npath = "{missing_store}"\n[llm]\nurl = "{url}"\n')
    assert main(["--config", str(config), "assist", "some-session", "--command", "concise"]) == 2
    assert capsys.readouterr().err == f"clinic: no clinic store at {missing_store} ([store] path)\n"
    assert not missing_store.parent.exists()
