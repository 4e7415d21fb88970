"""Retention: a transcript the clinic has acknowledged stays on the device `keep_days`, then is
purged (rows and every revision deleted with secure_delete on; the audit entry stays, without
content). Runs as its own supervised component, with an injectable clock for tests."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from appliance.config.schema import RetentionConfig
from appliance.store import IllegalTransition, SessionNotFound, SessionStore

log = logging.getLogger(__name__)
DAY = 86_400.0


class RetentionPurger:
    def __init__(self, store: SessionStore, cfg: RetentionConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.cfg = cfg
        self.clock = clock

    def run_once(self) -> list[str]:
        """Purge every session acknowledged more than keep_days ago; returns their ids."""
        cutoff = self.clock() - self.cfg.keep_days * DAY
        done = []
        for session_id in self.store.purgeable(cutoff):
            try:
                self.store.purge(session_id, actor="retention")
                done.append(session_id)
            except (IllegalTransition, SessionNotFound) as exc:  # re-queued or purged meanwhile
                log.info("retention skipped %s: %s", session_id, exc)
        if done:
            log.info("retention purged %d session(s) acknowledged over %.1f days ago", len(done), self.cfg.keep_days)
        return done

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.run_once()
            stop.wait(self.cfg.check_interval_s)
