"""Supervisor: a failing component is restarted with backoff, the others keep running."""

from __future__ import annotations

import itertools
import threading
import time

from appliance.daemon.supervisor import Supervisor


def test_failing_component_restarts_with_growing_backoff_and_others_keep_running():
    starts: list[float] = []
    ticks = {"n": 0}

    def flaky(stop: threading.Event) -> None:
        starts.append(time.monotonic())
        if len(starts) <= 3:
            raise RuntimeError(f"boom {len(starts)}")
        stop.wait()

    def steady(stop: threading.Event) -> None:
        while not stop.wait(0.01):
            ticks["n"] += 1

    sup = Supervisor(initial_backoff=0.05, max_backoff=0.15)
    sup.add("flaky", flaky)
    sup.add("steady", steady)
    sup.start()
    deadline = time.monotonic() + 5
    while len(starts) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    n_before = ticks["n"]
    time.sleep(0.1)
    flaky_state = sup.states()[0]
    sup.stop()
    assert len(starts) == 4
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.15  # doubled, then capped
    assert gaps[2] < 0.15 + 1.0
    assert flaky_state.restarts == 3 and "boom 3" in flaky_state.last_error
    assert ticks["n"] > n_before  # the healthy component never stopped


def test_component_returning_unasked_counts_as_failure():
    runs = []

    def quits(stop: threading.Event) -> None:
        runs.append(1)

    sup = Supervisor(initial_backoff=0.02, max_backoff=0.02)
    sup.add("quits", quits)
    sup.start()
    time.sleep(0.2)
    sup.stop()
    assert len(runs) >= 3
    assert "returned without being asked" in sup.states()[0].last_error


def test_stop_ends_all_components_promptly():
    sup = Supervisor(initial_backoff=1, max_backoff=1)
    for i in range(3):
        sup.add(f"c{i}", lambda stop: stop.wait())
    sup.start()
    t0 = time.monotonic()
    sup.stop(timeout=2)
    assert time.monotonic() - t0 < 1.0
    assert not any(s.running for s in sup.states())


def test_a_component_waiting_to_restart_shows_in_the_status_line_and_ctl_status(tmp_path):
    """The supervisor's health reaches IT: systemd STATUS (RoomStatus.line) and `ctl status`."""
    from appliance.config import parse_config
    from appliance.daemon.control import handle_request
    from appliance.daemon.room import build_controller
    from appliance.daemon.status import RoomStatus
    from appliance.sync.service import DisabledSync

    controller = build_controller(parse_config({
        "paths": {"state_dir": str(tmp_path / "state"), "models_dir": str(tmp_path / "models")},
        "asr": {"engine": "none"}, "vad": {"engine": "energy"}, "diarize": {"enabled": False},
    }))

    def broken(stop: threading.Event) -> None:
        raise OSError("address already in use")

    sup = Supervisor(initial_backoff=30.0, max_backoff=30.0)
    sup.add("panel", broken)
    sup.add("steady", lambda stop: stop.wait())
    room = RoomStatus(controller, DisabledSync(controller.store), sup)
    assert room.line() == "idle"
    sup.start()
    try:
        deadline = time.monotonic() + 5
        while sup.unhealthy() != ["panel"] and time.monotonic() < deadline:
            time.sleep(0.01)
        line = room.line()
        assert line == "idle; RESTARTING: panel (restart 1: OSError: address already in use)", line
        status = handle_request(room, {"cmd": "status"})["status"]
        components = {c["name"]: c for c in status["components"]}
        assert components["panel"]["restarts"] == 1 and not components["panel"]["running"]
        assert components["steady"] == {"name": "steady", "running": True, "restarts": 0, "last_error": ""}
        assert status["sync"]["enabled"] is False  # sync is always there, a disabled one when off
    finally:
        sup.stop()
        controller.store.close()
