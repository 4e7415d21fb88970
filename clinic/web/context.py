"""What every view of the clinic web view needs: config, store, templates, clock, the logged-in user."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import current_app, session

from clinic.config import ClinicConfig
from clinic.notes.templates import TemplateRegistry
from clinic.store import TranscriptStore
from clinic.users import LoginPolicy


@dataclass
class WebContext:
    cfg: ClinicConfig
    repo: TranscriptStore
    registry: TemplateRegistry
    clock: Callable[[], float] = time.time
    policy: LoginPolicy = field(default_factory=LoginPolicy)


def web() -> WebContext:
    context: WebContext = current_app.extensions["clinic-web"]
    return context


def username() -> str:
    """The logged-in user (the login check runs before every view but the login page)."""
    return str(session.get("user", ""))


def display_name() -> str:
    return str(session.get("name", ""))
