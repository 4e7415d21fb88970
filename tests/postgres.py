"""A throwaway PostgreSQL server for the clinic store tests (Debian's `postgresql` package), and
the "which clinic store" fixture helper that runs a test against SQLite and PostgreSQL alike.

The cluster lives in a temporary folder, listens on a unix socket there only (no TCP port to
collide with), and belongs to the `postgres` account: initdb refuses root, so as root the server
commands run through runuser. One cluster per test session, one fresh database per test.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg

from clinic.config import StoreConfig
from clinic.store import SqliteTranscriptStore, TranscriptStore
from clinic.store.postgres import PostgresTranscriptStore


def _pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise RuntimeError("PostgreSQL server programs not found under /usr/lib/postgresql: "
                           "install the Debian package `postgresql` (make setup does)")
    return versions[-1].parent


class PostgresServer:
    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix="clinic-pg-"))
        self.data = self.root / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:  # the server must not run as root
            shutil.chown(self.root, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self._names = itertools.count(1)

    def _run(self, *args: str) -> None:
        res = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({res.returncode}): {res.stderr.strip()}\n{tail}")

    def start(self) -> PostgresServer:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C.UTF-8")
        # fsync off: a test database need not survive a power cut, and the machine is shared.
        opts = f"-c listen_addresses='' -k {self.root} -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", opts, "-w", "-t", "60", "start")
        return self

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@/{dbname}?host={quote(str(self.root), safe='')}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"clinic_test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self) -> None:
        # -l again: without it the new server would write to (and keep open) our capture pipe.
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-m", "fast", "restart")

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class ClinicStoreTarget:
    """Where a test's clinic store lives: a SQLite file or a PostgreSQL database."""

    backend: str  # "sqlite" | "postgresql"
    location: str  # file path or URL
    opened: list[TranscriptStore] = field(default_factory=list)

    def open(self, clock: Callable[[], float] = time.time) -> TranscriptStore:
        repo: TranscriptStore
        if self.backend == "postgresql":
            repo = PostgresTranscriptStore(self.location, clock=clock)
        else:
            repo = SqliteTranscriptStore(self.location, clock=clock)
        self.opened.append(repo)
        return repo

    def close_all(self) -> None:
        """Close what the test left open (a PostgreSQL server has a connection limit)."""
        for repo in self.opened:
            repo.close()

    def config(self) -> StoreConfig:
        if self.backend == "postgresql":
            return StoreConfig(backend="postgresql", url=self.location)
        return StoreConfig(path=self.location)

    def toml(self) -> str:
        """The [store] table of a clinic.toml for this store."""
        key = "url" if self.backend == "postgresql" else "path"
        return f'[store]\nbackend = "{self.backend}"\n{key} = "{self.location}"\n'
