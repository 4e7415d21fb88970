"""`clinic generate`, `clinic templates list|check`, `clinic eval`: files in, one clear line and exit 2 on
bad input. The eval data is a two-visit CSV written here (tests never read ../shared)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from clinic import cli
from clinic.notes.templates import TemplateRegistry
from tests.notes_visit import VISIT, payload, segments

GOOD = """+++
name = "Sports Clinic"
description = "A clinic's own template."
budget_words = 200

[[sections]]
key = "story"
title = "Story"
intro = true
takes = ["hpi", "ros"]
instruction = "What happened."

[[sections]]
key = "plan"
title = "Plan"
takes = ["plan", "follow_up", "medications"]
+++
{% for s in sections if s.sentences %}
== {{ s.title }} ==
{% for line in s.sentences %}- {{ line.text }}
{% endfor %}
{% endfor %}
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def transcribe_json(tmp_path: Path) -> Path:
    """What `appliance transcribe --json` prints: start, end, speaker (display name), text; no ids."""
    path = tmp_path / "segments.json"
    path.write_text(json.dumps([{k: v for k, v in s.items() if k != "id"} | {"speaker": who}
                                for s, (who, _) in zip(segments(), VISIT, strict=True)]))
    return path


def test_generate_from_transcribe_json_in_each_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = transcribe_json(tmp_path)
    code, out, _ = run(capsys, "generate", str(src), "--template", "soap")
    assert code == 0 and out.startswith("CHIEF COMPLAINT\n\nCough.") and "She takes lisinopril 20 mg" in out
    code, out, _ = run(capsys, "generate", str(src), "--template", "H&P", "--format", "md")
    assert code == 0 and "## History of Present Illness" in out
    code, out, _ = run(capsys, "generate", str(src), "--format", "json", "--out", str(tmp_path / "n.json"))
    assert code == 0 and out == ""
    note = json.loads((tmp_path / "n.json").read_text())
    assert note["status"] == "ok" and note["generator"] == {"name": "builtin", "version": "1.0"}
    lines = [line for sec in note["sections"] for line in sec["sentences"]]
    assert lines and all(line["evidence"] and set(line["evidence"]) <= {f"s{i}" for i in range(1, 17)}
                         for line in lines)
    assert "Denies fever and chills." in note["text"]


def test_generate_from_a_sync_payload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "payload.json"
    src.write_text(json.dumps(payload(["SOAP"])))
    code, out, _ = run(capsys, "generate", str(src), "--template", "Progress Note")
    assert code == 0 and out.startswith("INTERVAL HISTORY\n")


def test_generate_with_the_clinician_set_by_the_reviewer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "payload.json"
    src.write_text(json.dumps(payload(["SOAP"], speakers={"S1": "Speaker 1", "S2": "Speaker 2"})))
    code, out, _ = run(capsys, "generate", str(src), "--clinician", "Speaker 2", "--format", "json")
    roles = {r["label"]: (r["role"], r["guessed"], r["set_by_reviewer"]) for r in json.loads(out)["roles"]}
    assert code == 0 and roles == {"S2": ("clinician", False, True), "S1": ("patient", True, False)}
    code, out, err = run(capsys, "generate", str(src), "--clinician", "Speaker 3")
    assert code == 2 and out == "" and err.count("\n") == 1 and "'Speaker 3' is not a speaker" in err


@pytest.mark.parametrize(("content", "message"), [
    ("not json {", "not JSON"),
    ('{"segments": []}', "expected a list of segments"),
    ('[{"start": 0, "end": 1, "speaker": "Patient"}]', "segment[0].text is missing or not a string"),
    ('{"schema": "scribe.transcript/1", "session_id": "x"}', "not a valid transcript payload"),
])
def test_generate_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   content: str, message: str) -> None:
    src = tmp_path / "bad.json"
    src.write_text(content)
    code, out, err = run(capsys, "generate", str(src))
    assert code == 2 and out == "" and err.count("\n") == 1 and str(src) in err and message in err, err


def test_generate_unknown_template_or_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "generate", str(transcribe_json(tmp_path)), "--template", "Letter")
    assert code == 2 and "unknown template 'Letter'" in err and "SOAP" in err and err.count("\n") == 1
    code, _, err = run(capsys, "generate", str(tmp_path / "nope.json"))
    assert code == 2 and "nope.json: cannot read" in err


def test_templates_list_includes_the_clinic_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "sports.j2").write_text(GOOD)
    (folder / "soap.j2").write_text(GOOD.replace('"Sports Clinic"', '"SOAP"'))  # replaces the built-in
    (folder / "broken.j2").write_text("no front matter")
    cfg = tmp_path / "clinic.toml"
    cfg.write_text(f'[notes]\ntemplates_dir = "{folder}"\n')
    code, out, err = run(capsys, "--config", str(cfg), "templates", "list")
    assert code == 0
    rows = {line.split("  ")[0].strip(): line for line in out.splitlines()}
    assert set(rows) == {"H&P", "Patient Instructions", "Progress Note", "SOAP", "Sports Clinic"}
    assert str(folder / "soap.j2") in rows["SOAP"] and "Story, Plan" in rows["Sports Clinic"]
    assert "broken.j2" in err  # a bad clinic file is reported and skipped, the rest still load
    code, out, _ = run(capsys, "--config", str(cfg), "generate", str(transcribe_json(tmp_path)),
                       "--template", "sports clinic")
    assert code == 0 and out.startswith("== Story ==\n- Maria is a 45-year-old") and "- Come back in 2 weeks" in out


@pytest.mark.parametrize(("content", "message"), [
    ("name = 'x'", "must start with a '+++' line"),
    ("+++\nname = 'x'\n", "front matter is not closed"),
    ("+++\nname = \n+++\n", "front matter is not valid TOML"),
    ("+++\nname = 'x'\n+++\n", "needs at least one [[sections]] table"),
    ("+++\nname = 'x'\n[[sections]]\nkey = 'a'\ntitle = 'A'\ntakes = ['gossip']\n+++\n", "unknown kind 'gossip'"),
    ("+++\nname = 'x'\naudience = 'family'\n[[sections]]\nkey = 'a'\ntitle = 'A'\n+++\n", "audience 'family'"),
    ("+++\nname = 'x'\nbudget_share = 2\n[[sections]]\nkey = 'a'\ntitle = 'A'\n+++\n", "budget_share must be"),
    ("+++\nname = 'x'\n[[sections]]\nkey = 'a'\ntitle = 'A'\n+++\n{% for %}", "Jinja2 body line 1"),
    ("+++\nname = 'x'\n[[sections]]\nkey = 'a'\ntitle = 'A'\n+++\n{{ patient.ssn }}", "fails to render"),
])
def test_templates_check_bad_file_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         content: str, message: str) -> None:
    bad = tmp_path / "bad.j2"
    bad.write_text(content)
    code, out, err = run(capsys, "templates", "check", str(bad))
    assert code == 2 and out == "" and err.count("\n") == 1 and str(bad) in err and message in err, err


def test_templates_check_good_file_and_builtins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "sports.j2"
    good.write_text(GOOD)
    code, out, _ = run(capsys, "templates", "check", str(good))
    assert code == 0 and "ok: Sports Clinic (clinician, 2 sections, budget 200 words)" in out
    assert TemplateRegistry().names() == ["H&P", "Patient Instructions", "Progress Note", "SOAP"]


DIALOGUE = "\n".join(f"[{'doctor' if who == 'Clinician' else 'patient'}] {text}" for who, text in VISIT)
REFERENCE = """CHIEF COMPLAINT

Cough.

HISTORY OF PRESENT ILLNESS

Maria is a 45-year-old female who presents for a cough of 2 weeks, worse at night. She reports shortness of
breath on stairs and denies fever or chills. She takes lisinopril 20 mg daily. Allergic to penicillin.

ASSESSMENT AND PLAN

Acute bronchitis. Albuterol inhaler 2 puffs every 4 hours as needed. Follow up in 2 weeks.
"""


def test_eval_prints_rouge_grounding_and_the_published_anchors(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "tiny.csv"
    with data.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "encounter_id", "dialogue", "note"])
        w.writerow(["test", "T1", DIALOGUE, REFERENCE])
    code, out, _ = run(capsys, "eval", str(data))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "tiny.csv: 1 visits, template H&P, generator builtin 1.0"
    r1, r2, rl = (float(x) for x in lines[2].split()[-3:])
    assert 40 < r1 < 100 and 0 < r2 < r1 and 0 < rl <= r1
    assert ["transcript", "copy", "(published)", "32.84", "12.53", "30.61"] in [line.split() for line in lines]
    assert "GPT-4 (published)" in out and "ChatGPT (published)" in out
    assert "grounding: 100.0 % of" in out and "100.0 % of" in out.split("cite segments;")[1]


def test_eval_bad_csv_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "wrong.csv"
    data.write_text("a,b\n1,2\n")
    code, _, err = run(capsys, "eval", str(data))
    assert code == 2 and "needs the columns 'dialogue' and 'note'" in err and err.count("\n") == 1


def test_notes_config_keys_are_documented_and_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "config", "show")
    assert code == 0 and "[notes]" in out and 'templates_dir = ""' in out and "catch_up_hours = 24.0" in out
    cfg = tmp_path / "clinic.toml"
    cfg.write_text("[notes]\nworkers = 0\n")
    code, _, err = run(capsys, "--config", str(cfg), "templates", "list")
    assert code == 2 and "notes.workers" in err and err.count("\n") == 1
    cfg.write_text(f'[notes]\ntemplates_dir = "{tmp_path / "nowhere"}"\n')
    code, out, err = run(capsys, "--config", str(cfg), "templates", "list")
    assert code == 0 and "nowhere: notes.templates_dir is not a folder" in err and "SOAP" in out
