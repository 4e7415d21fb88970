"""Retention: a transcript the clinic has acknowledged stays on the device `keep_days`, then is
purged (rows and every revision deleted with secure_delete on; the audit entry stays, without
content). Runs as its own supervised component, with an injectable clock for tests. It also
finishes any purge (its own, or one the clinic commanded) whose checkpoint a reader in another
process held back: retried every SCRUB_RETRY_S until the purged text is gone from the files."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from appliance.config.schema import RetentionConfig
from appliance.store import IllegalTransition, SessionNotFound, SessionStore

log = logging.getLogger(__name__)
DAY = 86_400.0
SCRUB_RETRY_S = 2.0


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
        next_check = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_check:
                self.run_once()
                next_check = time.monotonic() + self.cfg.check_interval_s
            if self.store.scrub_pending and self.store.scrub():
                log.info("purged text checkpointed out of the database files")
            wait = SCRUB_RETRY_S if self.store.scrub_pending else next_check - time.monotonic()
            stop.wait(max(0.0, min(wait, self.cfg.check_interval_s)))
