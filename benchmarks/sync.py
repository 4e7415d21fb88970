"""Sync throughput: 1,000 finished visits queued while the broker is down, then the broker starts.

Real parts only: the daemon process (`appliance run`, sync enabled, TLS client certificate), the
shipped Mosquitto config and ACL on loopback, and the clinic server (in this process). Prints time
to all-acked, sessions/s, the daemon's RSS before / peak / after, and checks zero loss by
comparing every session field by field with what the clinic stored.

    .venv/bin/python -m benchmarks.sync [--sessions 1000] [--segments 150] [--clinic-store postgresql]

--clinic-store postgresql stores at the clinic in a throwaway PostgreSQL server (tests/postgres.py)
instead of the SQLite file.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from appliance.store import State, open_store
from clinic.server import ClinicServer
from tests.broker import (
    Broker,
    assert_same_at_clinic,
    clinic_config,
    make_finished_sessions,
    make_pki,
    sync_toml,
    wait_until,
)
from tests.daemon import DaemonProcess, write_config
from tests.postgres import ClinicStoreTarget, PostgresServer


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--segments", type=int, default=150, help="utterances per visit (150 ≈ 15 minutes)")
    ap.add_argument("--clinic-store", choices=("sqlite", "postgresql"), default="sqlite")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmpdir, ExitStack() as cleanup:
        tmp = Path(tmpdir)
        if args.clinic_store == "postgresql":
            server = PostgresServer().start()
            cleanup.callback(server.stop)
            target = ClinicStoreTarget("postgresql", server.create_database())
        else:
            target = ClinicStoreTarget("sqlite", str(tmp / "clinic.db"))
        pki = make_pki(tmp / "pki", devices=("dev-a",))
        broker = Broker(pki, tmp / "broker")
        (tmp / "state").mkdir()
        store = open_store(str(tmp / "state" / "sessions.db"))
        t = time.perf_counter()
        ids = make_finished_sessions(store, args.sessions, segments=args.segments, bulk=True)
        print(f"queued {len(ids)} sessions of {args.segments} segments in {time.perf_counter() - t:.1f} s")
        # Production retry timing (the test defaults retry after 2 s, which a loaded machine would hit).
        extra = (sync_toml(pki, broker, "dev-a", ack_timeout_s=10.0, backoff_max_s=300.0)
                 + "[panel]\nenabled = false\n[diarize]\nenabled = false\n")
        config = write_config(tmp, tmp / "unused.wav", extra=extra)
        with DaemonProcess(config) as daemon:
            assert daemon.proc is not None
            pid = daemon.proc.pid
            time.sleep(3.0)  # settled, retrying the absent broker
            before = rss_mb(pid)
            assert store.pending_count() == len(ids)
            peak = before
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.wait(0.05):
                    peak = max(peak, rss_mb(pid))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            broker.start()
            clinic = ClinicServer(clinic_config(pki, broker, target)).start()
            t0 = time.perf_counter()
            wait_until(lambda: store.pending_count() < len(ids), 60, "first ack", interval=0.005)
            first_ack = time.perf_counter() - t0
            wait_until(lambda: store.pending_count() == 0, 600, "all acked", interval=0.02)
            elapsed = time.perf_counter() - t0
            done.set()
            sampler.join()
            time.sleep(1.0)
            after = rss_mb(pid)
        try:
            assert all(store.get_session(i).state is State.SYNCED for i in ids)
            rows = clinic.repo.list()
            assert sorted((r.session_id, r.revision) for r in rows) == sorted((i, 1) for i in ids)
            for sid in ids:
                assert_same_at_clinic(store, clinic.repo, sid, 1)
            resent = sum(r.deliveries - 1 for r in rows)
        finally:
            clinic.stop()
            broker.stop()
            store.close()
        db = (f"clinic db {Path(target.location).stat().st_size / 1e6:.1f} MB" if target.backend == "sqlite"
              else "clinic store in PostgreSQL, fsync off")
        print(f"sync: {len(ids)} sessions acked {elapsed:.2f} s after the broker start = "
              f"{len(ids) / elapsed:.0f} sessions/s (includes the daemon's reconnect: first ack after "
              f"{first_ack:.2f} s; from then on {(len(ids) - 1) / (elapsed - first_ack):.0f} sessions/s)")
        print(f"zero loss: {len(rows)} stored at the clinic, equal field by field; {resent} duplicate deliveries")
        print(f"daemon RSS: before {before:.1f} MB, peak {peak:.1f} MB, after {after:.1f} MB "
              f"({db})")


if __name__ == "__main__":
    main()
