"""`clinic generate`, `clinic templates list|check`, `clinic eval`: the note commands of the `clinic` CLI.
Bad input (not JSON, wrong shape, unknown template, bad template file) → one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from clinic.config import ClinicConfig
from clinic.notes.assistant import COMMANDS
from clinic.notes.render import FORMATS

EXPORT_FORMATS = ("fhir", "pdf")  # clinic/export: a FHIR R4 document Bundle, a PDF

if TYPE_CHECKING:
    from clinic.notes.templates import Template

EXIT_BAD_INPUT = 2


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gen = sub.add_parser("generate", help="write a note from a transcript file (built-in generator, or the LLM)")
    gen.add_argument("file", help="segments JSON from `appliance transcribe --json`, or a scribe.transcript/1 payload")
    gen.add_argument("--template", default="SOAP", help="template name (default: SOAP; see `clinic templates list`)")
    gen.add_argument("--format", default="text", choices=(*FORMATS, *EXPORT_FORMATS),
                     help="json: with every sentence's evidence; fhir: a FHIR R4 document Bundle (preliminary); "
                     "pdf: needs --out or a redirected stdout")
    gen.add_argument("--out", help="write here instead of stdout")
    gen.add_argument("--generator", choices=("builtin", "llm"),
                     help="default: [notes] generator; llm uses the [llm] server and fails (exit 2) if it gives "
                     "no answer")
    gen.add_argument("--clinician", metavar="SPEAKER",
                     help="this speaker (label or name, e.g. \"Speaker 2\") is the clinician, instead of the guess; "
                     "recorded as set by a person (built-in generator)")
    ast = sub.add_parser("assist", help="ask the LLM to expand a section, suggest differentials, make a stored "
                         "note concise or rewrite it for the patient (a suggestion; nothing is stored)")
    ast.add_argument("session_id")
    ast.add_argument("--command", dest="assist_command", required=True, choices=COMMANDS)
    ast.add_argument("--section", help="section title or key (required for expand; concise: default whole note)")
    ast.add_argument("--template", help="which of the session's notes (default: its only current note)")
    ast.add_argument("--json", action="store_true", help="the sentences with evidence and flags as JSON")
    tpl = sub.add_parser("templates", help="note templates: built-in and the clinic's folder")
    tsub = tpl.add_subparsers(dest="action", required=True)
    tsub.add_parser("list", help="name, audience, budget and sections of every template")
    chk = tsub.add_parser("check", help="validate one template file (exit 2 with the reason if it is unusable)")
    chk.add_argument("file")
    ev = sub.add_parser("eval", help="ROUGE and grounding of generated notes against an ACI-Bench-format CSV")
    ev.add_argument("csv", help="CSV with columns dialogue and note (ACI-Bench train/valid)")
    ev.add_argument("--template", default="H&P", help="template the notes are written with (default: H&P)")
    ev.add_argument("--generator", choices=("builtin", "llm"), help="default: [notes] generator")
    ev.add_argument("--limit", type=int, metavar="N", help="only the first N visits (an LLM is slow)")


def _fail(message: str) -> int:
    print(f"clinic: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run(args: argparse.Namespace, cfg: ClinicConfig) -> int:
    from clinic.notes.templates import TemplateError, TemplateRegistry, load_file
    from clinic.notes.transcript import TranscriptError

    if args.command == "assist":
        return _assist(args, cfg)
    if args.command == "templates" and args.action == "check":
        try:
            t = load_file(args.file)
        except TemplateError as exc:
            return _fail(str(exc))
        print(f"{args.file}: ok: {t.name} ({t.audience}, {len(t.sections)} sections, budget {t.budget_words} words)")
        return 0
    registry = TemplateRegistry(cfg.notes.templates_dir)
    for error in registry.errors:
        print(f"clinic: warning: {error}", file=sys.stderr)
    if args.command == "templates":
        for t in registry.templates.values():
            sections = ", ".join(s.title for s in t.sections)
            budget = (f"{t.budget_words} words" if t.budget_share is None else
                      f"{t.budget_min_words}-{t.budget_words} words ({t.budget_share:.0%} of speech)")
            print(f"{t.name:<24} {t.audience:<9} {budget:<32} {sections}  [{t.source}]")
        return 0
    template = registry.get(args.template)
    if template is None:
        return _fail(f"unknown template {args.template!r} (known: {', '.join(registry.names())})")
    try:
        if args.command == "eval":
            from clinic.notes.evaluate import evaluate, table

            result = evaluate(args.csv, template, args.generator or cfg.notes.generator, cfg.llm, args.limit)
            print(table(result, args.csv, template), end="")
            return 0
        return _generate(args, template, cfg)
    except TranscriptError as exc:
        return _fail(str(exc))


def _generate(args: argparse.Namespace, template: Template, cfg: ClinicConfig) -> int:
    from clinic.notes import transcript
    from clinic.notes.render import render
    from clinic.notes.service import generate

    visit = transcript.load(args.file)
    try:
        note = generate(visit, template, args.generator or cfg.notes.generator, cfg.llm, args.clinician)
    except ValueError as exc:  # --clinician names no speaker of this visit
        return _fail(str(exc))
    if note.fallback:
        return _fail(f"the LLM wrote no note: {note.fallback} (--generator builtin writes one without it)")
    if args.format in EXPORT_FORMATS:
        from clinic.export import ExportError, export
        from clinic.export.document import from_generated

        meta = {"session_id": visit.session_id, "revision": visit.revision, "name": visit.name}
        try:
            data = export(from_generated(note, render(note, template, "text"), meta), args.format)
        except ExportError as exc:
            return _fail(str(exc))
    else:
        data = render(note, template, args.format).encode("utf-8")
    return write_output(data, args.out)


def write_output(data: bytes, out: str | None) -> int:
    """To the file `out`, else stdout (a PDF only when stdout is not a terminal)."""
    if out:
        try:
            Path(out).write_bytes(data)
        except OSError as exc:
            return _fail(f"{out}: cannot write: {exc.strerror}")
        return 0
    if data.startswith(b"%PDF") and sys.stdout.isatty():
        return _fail("a PDF is not for the terminal: give --out FILE or redirect stdout")
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


def _assist(args: argparse.Namespace, cfg: ClinicConfig) -> int:
    import json

    from clinic.cli import reader
    from clinic.notes.assistant import NO_LLM, assist
    from clinic.notes.llm.client import configured
    from clinic.notes.transcript import from_payload
    from clinic.store import StoreUnavailable, open_repository

    if not configured(cfg.llm):
        return _fail(NO_LLM)
    if cfg.store.backend == "sqlite" and not Path(cfg.store.path).exists():  # a read must not create a store
        return _fail(f"no clinic store at {cfg.store.path} ([store] path)")
    try:
        repo = open_repository(cfg.store)
    except StoreUnavailable as exc:
        return _fail(str(exc))
    try:
        notes = [n for n in repo.notes(args.session_id, current_only=True)
                 if args.template is None or n.template.casefold() == args.template.casefold()]
        if len(notes) != 1:
            names = ", ".join(n.template for n in repo.notes(args.session_id, current_only=True)) or "none"
            return _fail(f"session {args.session_id}: {'no' if not notes else 'more than one'} current note"
                         f"{f' for template {args.template!r}' if args.template else ''} (its notes: {names}; "
                         "choose with --template)")
        stored = notes[0]
        payload = repo.get(stored.session_id, stored.revision, actor=reader(), reason=f"assist {args.assist_command}")
    finally:
        repo.close()
    if payload is None:
        return _fail(f"no transcript {stored.session_id} revision {stored.revision}")
    result = assist(args.assist_command, stored.body, from_payload(payload), cfg.llm, section=args.section)
    if not result.ok:
        return _fail(result.message)
    if args.json:
        print(json.dumps({"command": result.command, "section": result.section, "message": result.message,
                          "sentences": result.sentences}, indent=2, ensure_ascii=False))
        return 0
    for s in result.sentences:
        flags = f"  [CHECK: {'; '.join(s['flags'])}]" if s["flags"] else ""
        print(f"- {s['text']}  (evidence: {', '.join(s['evidence']) or 'none'}){flags}")
    if result.message:
        print(f"clinic: {result.message}", file=sys.stderr)
    return 0
