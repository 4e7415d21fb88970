"""Notes after ingest: `Ingest.on_stored` hands each stored (session, revision) to a bounded pool of
worker threads, so a slow generator never delays acks. A worker reads the transcript back, writes
one note per template the visit asked for, stores it (with generator name and version; the
previous note of that template is marked superseded) and publishes it on the device's note topic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from clinic.config import LlmConfig
from clinic.notes import builtin, grounding
from clinic.notes.model import STATUS_ERROR, Note, Transcript
from clinic.notes.render import render
from clinic.notes.templates import Template, TemplateRegistry
from clinic.notes.transcript import from_payload
from clinic.store import StoredNote, TranscriptStore

log = logging.getLogger(__name__)

# (site, device_id, note message) → the caller publishes it (ClinicServer.send_note)
Publish = Callable[[str, str, dict[str, Any]], None]


def generate(transcript: Transcript, template: Template, generator: str = "builtin",
             llm: LlmConfig | None = None, clinician: str | None = None) -> Note:
    """A note by the chosen generator: builtin, or llm (which falls back to builtin, marked).
    `clinician` overrides who the clinician is; only the built-in generator assigns roles, so it writes."""
    if generator == "llm" and not clinician:
        from clinic.notes.llm.generator import generate as llm_generate

        return llm_generate(transcript, template, llm or LlmConfig())
    note = builtin.generate(transcript, template, clinician)
    # Kept with the note: a number, drug or dose its cited segments do not contain.
    note.warnings += [f"not in the cited segments: {u}" for u in grounding.check(note, transcript).unsupported]
    return note


def write_note(transcript: Transcript, template_name: str, registry: TemplateRegistry, generator: str = "builtin",
               llm: LlmConfig | None = None, clinician: str | None = None) -> tuple[Note, str]:
    """The note and its text for one template; an unknown template gives an error note that says so."""
    template = registry.get(template_name)
    if template is None:
        note = Note(template=template_name, generator=builtin.NAME, generator_version=builtin.VERSION,
                    status=STATUS_ERROR, message=f"No note: the clinic has no template named {template_name!r} "
                    f"(it has: {', '.join(registry.names())}).")
        return note, note.message + "\n"
    try:
        note = generate(transcript, template, generator, llm, clinician)
        return note, render(note, template, "text")
    except Exception as exc:  # e.g. a clinic template whose body fails on this visit's data
        log.exception("template %s failed on %s rev %d", template_name, transcript.session_id, transcript.revision)
        note = Note(template=template_name, generator=builtin.NAME, generator_version=builtin.VERSION,
                    status=STATUS_ERROR, message=f"No note: template {template_name!r} ({template.source}) failed "
                    f"on this visit: {type(exc).__name__}: {exc}")
        return note, note.message + "\n"


def note_message(stored: StoredNote, note: Note) -> dict[str, Any]:
    """The scribe.note/1 message for a stored note, with each sentence's evidence."""
    return {"schema": "scribe.note/1", "session_id": stored.session_id, "revision": stored.revision,
            "template": stored.template, "text": stored.text, "status": stored.status,
            "generator": {"name": stored.generator, "version": stored.generator_version},
            "evidence": note.evidence()}


class NoteService:
    def __init__(self, repo: TranscriptStore, registry: TemplateRegistry, publish: Publish,
                 workers: int = 2, fallback_template: str = "SOAP", generator: str = "builtin",
                 llm: LlmConfig | None = None) -> None:
        self.repo = repo
        self.generator = generator
        self.llm = llm
        self.registry = registry
        self.publish = publish
        self.fallback_template = fallback_template
        # Threads start on the first submit; the queue holds only (site, device, session, revision).
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clinic-notes")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def on_stored(self, payload: dict[str, Any]) -> None:
        """Ingest's hook (ingest thread): queue the work and return at once."""
        self._submit(payload["site"], payload["device_id"], payload["session_id"], payload["revision"])

    def catch_up(self, hours: float) -> int:
        """Queue transcripts of the last `hours` that were stored (and acked) but have no note: the
        server stopped before writing them. Returns how many were queued."""
        missing = self.repo.revisions_without_notes(time.time() - hours * 3600) if hours > 0 else []
        for site, device_id, session_id, revision in missing:
            self._submit(site, device_id, session_id, revision)
        if missing:
            log.info("writing the notes of %d stored transcripts that have none", len(missing))
        return len(missing)

    def _submit(self, site: str, device_id: str, session_id: str, revision: int) -> None:
        future = self._pool.submit(self._generate, site, device_id, session_id, revision)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)
        exc = future.exception()
        if exc is not None:
            log.error("note generation failed: %s", exc, exc_info=exc)

    def idle(self) -> bool:
        with self._lock:
            return not self._pending

    def _generate(self, site: str, device_id: str, session_id: str, revision: int) -> None:
        payload = self.repo.get(session_id, revision, actor="clinic-notes", reason="write notes")  # audited
        if payload is None:
            log.warning("no transcript %s rev %d to write notes from", session_id, revision)
            return
        transcript = from_payload(payload)
        names = list(transcript.templates) or ([self.fallback_template] if self.fallback_template else [])
        for name in names:
            note, text = write_note(transcript, name, self.registry, self.generator, self.llm)
            stored = self.repo.add_note(session_id, revision, name, note.generator, note.generator_version,
                                        note.status, text, note.to_dict())
            log.info("note %s for %s rev %d: %s, %d sentences", name, session_id, revision, note.status,
                     len(note.statements))
            self.publish(site, device_id, note_message(stored, note))

    def close(self) -> None:
        """Finish what is queued, then stop the threads."""
        self._pool.shutdown(wait=True)
