"""Session store: sessions, versioned transcripts, speakers, outbox and audit trail in SQLite.

Open it with open_store(path); see store.py for the operations and states.py for the workflow.
"""

from appliance.store.errors import (
    OutboxItemNotFound,
    SchemaVersionError,
    SegmentNotFound,
    SessionClosed,
    SessionNotFound,
    StoreError,
)
from appliance.store.ids import uuid7, uuid7_time
from appliance.store.models import AuditEvent, Note, OutboxItem, Segment, Session
from appliance.store.schema import SCHEMA_VERSION
from appliance.store.states import (
    TRANSITIONS,
    IllegalTransition,
    State,
    allowed_from,
    check_transition,
    is_allowed,
)
from appliance.store.store import SessionStore, open_store

__all__ = [
    "SCHEMA_VERSION",
    "TRANSITIONS",
    "AuditEvent",
    "IllegalTransition",
    "Note",
    "OutboxItem",
    "OutboxItemNotFound",
    "SchemaVersionError",
    "Segment",
    "SegmentNotFound",
    "Session",
    "SessionClosed",
    "SessionNotFound",
    "SessionStore",
    "State",
    "StoreError",
    "allowed_from",
    "check_transition",
    "is_allowed",
    "open_store",
    "uuid7",
    "uuid7_time",
]
