"""Start-up check of the database file: a damaged one is set aside and replaced by a fresh store.

The damaged file (with its -wal and -shm) is renamed, never deleted or rewritten, so clinic IT
can still hand it to a specialist. Every row that can still be read from it is copied into the
fresh store: each table is read forwards from its first row until the damage, then backwards
from its last row until the damage, so only rows between damaged pages stay behind (in the kept
file). Rows whose parent session was lost are left out of the fresh store (still in the file).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from appliance.store.store import SessionStore, open_store

log = logging.getLogger(__name__)

_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


@dataclass
class Recovery:
    """What happened to a damaged database at start-up."""

    problem: str
    aside: str  # where the damaged file now is
    copied: dict[str, int] = field(default_factory=dict)  # table → rows copied into the fresh store
    left: dict[str, int] = field(default_factory=dict)  # table → readable rows the fresh store refused

    def message(self) -> str:
        copied = ", ".join(f"{n} {t}" for t, n in self.copied.items() if n) or "no rows"
        return (f"The session database was damaged ({self.problem}) and was set aside as {self.aside}; "
                f"a fresh one was started with the rows still readable ({copied}). Tell clinic IT.")

    def alert(self) -> str:
        """The short form for IT (status topic, systemd STATUS)."""
        return (f"Session database damaged at start-up; set aside as {os.path.basename(self.aside)}, "
                f"{sum(self.copied.values())} readable rows copied to a fresh one")


def _is_damage(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _DAMAGED


def find_damage(path: str, *, busy_timeout: float = 30.0) -> str:
    """'' if the file is absent or passes PRAGMA quick_check, else what is wrong. Other errors
    (locked, unreadable) are raised: a busy database must never be mistaken for a damaged one."""
    if not os.path.exists(path):
        return ""
    conn = sqlite3.connect(path, timeout=busy_timeout)
    try:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        if not _is_damage(exc):
            raise
        return str(exc)
    finally:
        conn.close()
    return "" if rows == ["ok"] else "; ".join(rows[:3])


def _set_aside(path: str, clock: Callable[[], float]) -> str:
    aside = f"{path}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(clock()))}"
    os.rename(path, aside)
    for suffix in ("-wal", "-shm"):  # the WAL holds committed rows: it travels with its database
        if os.path.exists(path + suffix):
            os.rename(path + suffix, aside + suffix)
    return aside


def _read_rows(src: sqlite3.Connection, table: str, cols: list[str], key: list[str]) -> Iterator[tuple]:
    """Rows of `table` from both ends up to the damage (duplicates removed by the caller)."""
    names = ", ".join(f'"{c}"' for c in cols)
    for direction in ("ASC", "DESC"):
        order = ", ".join(f'"{k}" {direction}' if k != "rowid" else f"rowid {direction}" for k in key)
        try:
            yield from src.execute(f'SELECT {names} FROM "{table}" ORDER BY {order}')
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                raise
            continue
        return  # read to the end without damage: no need to come from the other side


def _salvage(aside: str, store: SessionStore) -> tuple[dict[str, int], dict[str, int]]:
    try:
        src = sqlite3.connect(f"file:{aside}?mode=ro", uri=True)
    except sqlite3.Error:
        return {}, {}
    copied: dict[str, int] = {}
    left: dict[str, int] = {}
    db = store._db
    try:
        for table in _parents_first(db.conn):
            try:
                theirs = {r[1]: r[5] for r in src.execute(f'PRAGMA table_info("{table}")')}
                rowid = not src.execute(
                    "SELECT 1 FROM sqlite_master WHERE name = ? AND sql LIKE '%WITHOUT ROWID%'", [table]).fetchone()
            except sqlite3.DatabaseError:
                continue  # the schema itself is unreadable for this table
            mine = [r[1] for r in db.conn.execute(f'PRAGMA table_info("{table}")')]
            cols = [c for c in mine if c in theirs]
            if not cols:
                continue
            key = ["rowid"] if rowid else [c for c, _ in sorted(
                ((c, n) for c, n in theirs.items() if n), key=lambda x: x[1])]
            names = ", ".join(f'"{c}"' for c in cols)
            insert = f'INSERT OR IGNORE INTO "{table}" ({names}) VALUES ({", ".join("?" * len(cols))})'
            copied[table] = left[table] = 0
            with store.batch():
                for row in _read_rows(src, table, cols, key):
                    try:
                        copied[table] += db.conn.execute(insert, row).rowcount
                    except sqlite3.IntegrityError:  # e.g. its session was on a damaged page
                        left[table] += 1
    finally:
        src.close()
    return copied, left


def _parents_first(conn: sqlite3.Connection) -> list[str]:
    """The store's tables, each after the tables its foreign keys point to."""
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    parents = {t: {r[2] for r in conn.execute(f'PRAGMA foreign_key_list("{t}")')} - {t} for t in tables}
    ordered: list[str] = []
    while len(ordered) < len(tables):
        ordered += [t for t in tables if t not in ordered and parents[t] <= set(ordered)] or \
                   [t for t in tables if t not in ordered]  # a cycle: take the rest as they come
    return ordered


def open_store_checked(
    path: str, *, clock: Callable[[], float] = time.time
) -> tuple[SessionStore, Recovery | None]:
    """open_store() after PRAGMA quick_check; a damaged file is set aside and a fresh store holds
    what could be read from it (the Recovery says what happened)."""
    problem = find_damage(path)
    if not problem:
        return open_store(path, clock=clock), None
    aside = _set_aside(path, clock)
    store = open_store(path, clock=clock)
    recovery = Recovery(problem, aside)
    recovery.copied, recovery.left = _salvage(aside, store)
    store.audit("daemon", "store:recovered", None, aside=aside, copied=recovery.copied, left=recovery.left)
    log.error("%s", recovery.message())
    return store, recovery
