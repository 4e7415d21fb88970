"""The web view's one door to the LLM side (clinic.notes.assistant, clinic.notes.llm, written
separately): assistant commands and regeneration with the LLM generator. A missing module, no
configured LLM or a failing call comes back as a plain sentence for the user, never an error page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from clinic.config import ClinicConfig, LlmConfig
from clinic.notes.model import Note, Transcript
from clinic.notes.templates import Template

log = logging.getLogger(__name__)

DEFAULT_COMMANDS = ("expand", "differentials", "concise", "patient")
COMMAND_WORDS = {"expand": "Expand a section", "differentials": "Add differentials", "concise": "Make concise",
                 "patient": "Rewrite for the patient"}
GENERATORS = ("builtin", "llm")


@dataclass(frozen=True)
class Suggestion:
    ok: bool
    message: str = ""  # for the user when not ok
    text: str = ""
    sentences: list[dict[str, Any]] = field(default_factory=list)
    section: str | None = None


def commands() -> tuple[str, ...]:
    try:
        from clinic.notes.assistant import COMMANDS
    except ImportError:
        return DEFAULT_COMMANDS
    return tuple(COMMANDS)


def _llm_config(cfg: ClinicConfig) -> LlmConfig | None:
    return cfg.llm if cfg.llm.url else None


def assist(cfg: ClinicConfig, command: str, body: dict[str, Any], transcript: Transcript,
           section: str | None) -> Suggestion:
    try:
        from clinic.notes.assistant import assist as run
    except ImportError:
        return Suggestion(False, "Assistant commands are not installed on this clinic server.")
    llm = _llm_config(cfg)
    if llm is None:
        return Suggestion(False, "No LLM is configured for this clinic ([llm] url in the clinic config), so "
                                 "assistant commands are not available.")
    try:
        result = run(command, body, transcript, llm, section=section or None)
    except Exception as exc:  # their code, our page: say so plainly and keep the note as it is
        log.exception("assistant command %s failed", command)
        return Suggestion(False, f"The assistant failed ({type(exc).__name__}); the note is unchanged.")
    return Suggestion(bool(result.ok), str(result.message or ""), str(result.text or ""),
                      list(result.sentences or []), result.section)


def generate_llm(cfg: ClinicConfig, transcript: Transcript, template: Template) -> tuple[Note, str] | str:
    """A note from the LLM generator (clinic.notes.llm.generator.generate, which falls back to the
    built-in note, marked, when the server is down or slow) and its text; or why there is none."""
    try:
        from clinic.notes.llm.generator import generate
    except ImportError:
        return "The LLM generator is not installed on this clinic server."
    llm = _llm_config(cfg)
    if llm is None:
        return "No LLM is configured for this clinic ([llm] url in the clinic config)."
    from clinic.notes.render import render

    try:
        note = generate(transcript, template, llm)
        return note, render(note, template, "text")
    except Exception as exc:  # their code, our page
        log.exception("LLM generator failed")
        return f"The LLM generator failed ({type(exc).__name__}); nothing was changed."
