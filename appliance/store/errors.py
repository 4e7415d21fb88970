"""Errors raised by the session store (state-machine errors live in states.py)."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's own errors that are not lookups or bad arguments."""


class SessionNotFound(KeyError):
    """No session has this id."""

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id)
        self.session_id = session_id

    def __str__(self) -> str:  # KeyError would repr() the argument
        return f"no session with id {self.session_id!r}"


class SegmentNotFound(KeyError):
    """No segment with this id in this session (or it was deleted)."""

    def __init__(self, session_id: str, segment_id: str) -> None:
        super().__init__(segment_id)
        self.session_id = session_id
        self.segment_id = segment_id

    def __str__(self) -> str:
        return f"no segment {self.segment_id!r} in session {self.session_id!r}"


class OutboxItemNotFound(KeyError):
    """No outbox row has this id (it may have been removed by a purge)."""

    def __init__(self, outbox_id: int) -> None:
        super().__init__(outbox_id)
        self.outbox_id = outbox_id

    def __str__(self) -> str:
        return f"no outbox item with id {self.outbox_id}"


class SessionClosed(ValueError):
    """The session's state does not allow this operation (e.g. editing a purged transcript)."""


class SchemaVersionError(StoreError):
    """The database was written by a newer version of the software than this one."""
