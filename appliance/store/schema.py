"""Schema versions and forward migrations, tracked in `PRAGMA user_version`.

MIGRATIONS[i] takes a database from version i to i + 1. A migration is frozen once released:
it is plain SQL rather than derived from the Python models, so the schema a device ends up with
never depends on the code version that happened to run it. Never edit one; append a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlite_utils import Database

from appliance.store.errors import SchemaVersionError

Migration = Callable[[Database], None]


def _v1_initial(db: Database) -> None:
    statements = [
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            room TEXT NOT NULL DEFAULT '',
            clinician TEXT NOT NULL DEFAULT '',
            device_id TEXT NOT NULL DEFAULT '',
            site TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL CHECK (state IN
                ('idle', 'recording', 'paused', 'stopped', 'reviewed', 'queued', 'synced', 'purged')),
            interrupted INTEGER NOT NULL DEFAULT 0 CHECK (interrupted IN (0, 1)),
            consent INTEGER NOT NULL DEFAULT 0 CHECK (consent IN (0, 1)),
            templates TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(templates)),
            created_at REAL NOT NULL,
            started_at REAL,
            ended_at REAL,
            updated_at REAL NOT NULL,
            recorded_seconds REAL NOT NULL DEFAULT 0 CHECK (recorded_seconds >= 0),
            revision INTEGER NOT NULL DEFAULT 1 CHECK (revision >= 1),
            synced_at REAL,
            purged_at REAL
        )""",
        "CREATE INDEX sessions_state ON sessions (state, created_at)",
        # One row per version of a segment: an edit adds a row at the new session revision, so
        # any earlier revision can be rebuilt (and sent) exactly.
        """CREATE TABLE segments (
            id TEXT NOT NULL,
            session_id TEXT NOT NULL REFERENCES sessions (id),
            seq INTEGER NOT NULL,
            start REAL NOT NULL CHECK (start >= 0),
            "end" REAL NOT NULL,
            speaker TEXT NOT NULL,
            text TEXT NOT NULL,
            revision INTEGER NOT NULL,
            deleted INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
            created_at REAL NOT NULL,
            PRIMARY KEY (id, revision),
            CHECK ("end" >= start)
        )""",
        "CREATE INDEX segments_session ON segments (session_id, seq)",
        """CREATE TABLE speakers (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            label TEXT NOT NULL,
            name TEXT NOT NULL,
            PRIMARY KEY (session_id, label)
        ) WITHOUT ROWID""",
        # AUTOINCREMENT: ids are never reused after a purge, so a late ack cannot hit a new row.
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL REFERENCES sessions (id),
            revision INTEGER NOT NULL,
            created_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            acked_at REAL,
            superseded INTEGER NOT NULL DEFAULT 0 CHECK (superseded IN (0, 1))
        )""",
        "CREATE INDEX outbox_session ON outbox (session_id)",
        "CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE acked_at IS NULL AND superseded = 0",
        # No foreign key to sessions: the audit trail must outlive anything done to a session.
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            session_id TEXT,
            detail TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
        )""",
        "CREATE INDEX audit_session ON audit (session_id, id)",
        # The audit trail is append-only, also against code paths that forget it.
        """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
            BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
        """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
            BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
    ]
    for sql in statements:
        db.execute(sql)


def _v2_notes(db: Database) -> None:
    # Notes the clinic generated from a sent transcript, one per (session, revision, template):
    # a re-delivered note replaces its row instead of adding one. Purge deletes them.
    db.execute(
        """CREATE TABLE notes (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            revision INTEGER NOT NULL CHECK (revision >= 1),
            template TEXT NOT NULL CHECK (template <> ''),
            text TEXT NOT NULL,
            received_at REAL NOT NULL,
            PRIMARY KEY (session_id, revision, template)
        ) WITHOUT ROWID"""
    )


def _v3_voiceprints(db: Database) -> None:
    # The speaker labeller's memory of a visit in progress (one voice print per turn, never
    # audio), so a visit resumed after a crash keeps its labels; deleted at Stop and by purge.
    db.execute(
        """CREATE TABLE voiceprints (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            turn INTEGER NOT NULL CHECK (turn >= 0),
            segment_id TEXT NOT NULL,
            start REAL NOT NULL,
            "end" REAL NOT NULL,
            label TEXT NOT NULL,
            vector BLOB NOT NULL,
            azimuth REAL,
            confidence REAL,
            PRIMARY KEY (session_id, turn)
        ) WITHOUT ROWID"""
    )


def _v4_review_marks(db: Database) -> None:
    # Why a session was purged ('retention', or 'discarded' on the panel: wrong patient, consent
    # withdrawn), and which segment versions a person wrote on Review (shown as "edited").
    db.execute("ALTER TABLE sessions ADD COLUMN purge_reason TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE segments ADD COLUMN edited INTEGER NOT NULL DEFAULT 0 CHECK (edited IN (0, 1))")


def _v5_segment_confidence(db: Database) -> None:
    # The recogniser's confidence in a line (exp of the mean token log-probability, 0–1) and per
    # word (a JSON array, one number per whitespace-separated word of the text); NULL when unknown
    # or after a person rewrote the words. Review points at the words to check.
    db.execute("ALTER TABLE segments ADD COLUMN confidence REAL "
               "CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1))")
    db.execute("ALTER TABLE segments ADD COLUMN word_confidence TEXT "
               "CHECK (word_confidence IS NULL OR json_valid(word_confidence))")


def _v6_speaker_uncertain(db: Database) -> None:
    # The labeller was unsure who said a line (similar voices, no direction): Review shows the
    # speaker as uncertain and offers the one-tap fix; cleared once a person or a relabel decides.
    db.execute("ALTER TABLE segments ADD COLUMN speaker_uncertain INTEGER NOT NULL DEFAULT 0 "
               "CHECK (speaker_uncertain IN (0, 1))")


MIGRATIONS: tuple[Migration, ...] = (_v1_initial, _v2_notes, _v3_voiceprints, _v4_review_marks,
                                     _v5_segment_confidence, _v6_speaker_uncertain)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _too_new(where: str, found: int, supported: int) -> SchemaVersionError:
    return SchemaVersionError(
        f"session database {where} has schema version {found}, newer than this software supports "
        f"({supported}); install the newer appliance software (or restore a matching backup) "
        "instead of downgrading"
    )


def migrate(db: Database, migrations: Sequence[Migration] = MIGRATIONS, *, where: str = "") -> int:
    """Bring the database up to len(migrations) and return that version.

    All pending steps run in one IMMEDIATE transaction, so a crash or a failing step leaves the
    database at its old version, and a second process opening it at the same time waits and then
    finds the work done.
    """
    target = len(migrations)
    where = where or "(in memory)"
    current = schema_version(db)
    if current > target:
        raise _too_new(where, current, target)
    if current == target:
        return current
    db.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(db)  # re-read under the write lock: another process may have won
        if current > target:
            raise _too_new(where, current, target)
        for version in range(current, target):
            migrations[version](db)
            db.execute(f"PRAGMA user_version = {version + 1:d}")
    except BaseException:
        db.rollback()
        raise
    db.commit()
    return target
