"""`clinic generate`, `clinic templates list|check`, `clinic eval`: the note commands of the `clinic` CLI.
Bad input (not JSON, wrong shape, unknown template, bad template file) → one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from clinic.config import ClinicConfig
from clinic.notes.render import FORMATS

EXPORT_FORMATS = ("fhir", "pdf")  # clinic/export: a FHIR R4 document Bundle, a PDF

if TYPE_CHECKING:
    from clinic.notes.templates import Template

EXIT_BAD_INPUT = 2


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gen = sub.add_parser("generate", help="write a note from a transcript file (built-in generator, no LLM)")
    gen.add_argument("file", help="segments JSON from `appliance transcribe --json`, or a scribe.transcript/1 payload")
    gen.add_argument("--template", default="SOAP", help="template name (default: SOAP; see `clinic templates list`)")
    gen.add_argument("--format", default="text", choices=(*FORMATS, *EXPORT_FORMATS),
                     help="json: with every sentence's evidence; fhir: a FHIR R4 document Bundle (preliminary); "
                     "pdf: needs --out or a redirected stdout")
    gen.add_argument("--out", help="write here instead of stdout")
    tpl = sub.add_parser("templates", help="note templates: built-in and the clinic's folder")
    tsub = tpl.add_subparsers(dest="action", required=True)
    tsub.add_parser("list", help="name, audience, budget and sections of every template")
    chk = tsub.add_parser("check", help="validate one template file (exit 2 with the reason if it is unusable)")
    chk.add_argument("file")
    ev = sub.add_parser("eval", help="ROUGE and grounding of generated notes against an ACI-Bench-format CSV")
    ev.add_argument("csv", help="CSV with columns dialogue and note (ACI-Bench train/valid)")
    ev.add_argument("--template", default="H&P", help="template the notes are written with (default: H&P)")


def _fail(message: str) -> int:
    print(f"clinic: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run(args: argparse.Namespace, cfg: ClinicConfig) -> int:
    from clinic.notes.templates import TemplateError, TemplateRegistry, load_file
    from clinic.notes.transcript import TranscriptError

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

            print(table(evaluate(args.csv, template), args.csv, template), end="")
            return 0
        return _generate(args, template)
    except TranscriptError as exc:
        return _fail(str(exc))


def _generate(args: argparse.Namespace, template: Template) -> int:
    from clinic.notes import builtin, transcript
    from clinic.notes.render import render

    visit = transcript.load(args.file)
    note = builtin.generate(visit, template)
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
