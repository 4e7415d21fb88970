"""PIN lockouts escalate (doubling, capped, kept across restarts), repeated lockouts raise an alert
that IT sees in `ctl status` and on the clinic's status topic (real Mosquitto), and LAN mode needs
longer PINs."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from appliance.config.schema import PanelConfig
from appliance.daemon.alerts import Alerts
from appliance.daemon.control import handle_request
from appliance.daemon.status import RoomStatus
from appliance.daemon.supervisor import Supervisor
from appliance.panel.pin import ALERT_KEY, PinError, PinGuard
from appliance.store import open_store
from appliance.sync.service import SyncService
from clinic.server import ClinicServer
from tests.broker import Broker, Pki, device_config, wait_until
from tests.conftest import Clock
from tests.test_panel_app import PIN, Panel

CFG = PanelConfig(pin_attempts=2, pin_lockout_s=60.0, pin_lockout_max_s=300.0, pin_alert_lockouts=2)


def lock_out(guard: PinGuard) -> str:
    """Wrong PINs until a lockout starts; its message."""
    with pytest.raises(PinError, match="1 more try"):
        guard.check("9999")
    with pytest.raises(PinError, match="blocked for") as err:
        guard.check("9999")
    return str(err.value)


def lift(path: Path) -> None:
    """Let the lockout end (wall time), as if its time had passed."""
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "locked_until": time.time() - 1}))


@pytest.mark.slow
def test_each_lockout_in_a_row_doubles_up_to_the_cap_and_survives_a_restart(tmp_path):
    path = tmp_path / "panel" / "pin.json"
    attempts = path.with_name("pin-attempts.json")
    clock = Clock(1000.0)
    guard = PinGuard(path, CFG, clock=clock)
    guard.set_pin(PIN, PIN)
    assert lock_out(guard).endswith("blocked for 60 seconds.")
    clock.tick(61)
    assert lock_out(guard).endswith("blocked for 2 minutes.")  # no right PIN in between: twice as long
    assert 119 < guard.lockout_remaining() <= 120
    # A restart keeps the lockout and how many came before it.
    guard = PinGuard(path, CFG, clock=Clock(5.0))
    assert 110 < guard.lockout_remaining() <= 120
    with pytest.raises(PinError, match="Please wait 2 minutes"):
        guard.check(PIN)
    lift(attempts)
    guard = PinGuard(path, CFG, clock=Clock(9.0))
    assert lock_out(guard).endswith("blocked for 4 minutes.")
    lift(attempts)
    guard = PinGuard(path, CFG, clock=Clock(9.0))
    assert lock_out(guard).endswith("blocked for 5 minutes.")  # pin_lockout_max_s
    # The right PIN (once the lockout is over) starts again from the first lockout's length.
    lift(attempts)
    guard = PinGuard(path, CFG, clock=Clock(11.0))
    guard.check(PIN)
    assert json.loads(attempts.read_text()) == {"failures": 0, "lockouts": 0, "locked_until": 0.0}
    assert lock_out(guard).endswith("blocked for 60 seconds.")


def test_a_4_digit_pin_takes_years_to_guess_with_the_defaults(tmp_path):
    guard = PinGuard(tmp_path / "pin.json", PanelConfig())
    per_lockout, lockouts = guard.cfg.pin_attempts, 10_000 // guard.cfg.pin_attempts
    total_s = sum(guard.lockout_for(n) for n in range(1, lockouts + 1))
    assert lockouts * per_lockout == 10_000 and total_s / (365 * 86400) > 5  # all 4-digit PINs: > 5 years
    assert guard.lockout_for(1) == 60 and guard.lockout_for(12) == 86400


@pytest.mark.slow
def test_repeated_lockouts_raise_an_alert_until_the_right_pin(tmp_path):
    path = tmp_path / "panel" / "pin.json"
    alerts = Alerts()
    guard = PinGuard(path, CFG, clock=Clock(1000.0), alerts=alerts)
    guard.set_pin(PIN, PIN)
    lock_out(guard)
    assert alerts.active() == []  # one lockout: somebody mistyped
    lift(path.with_name("pin-attempts.json"))
    guard = PinGuard(path, CFG, clock=Clock(5.0), alerts=alerts)
    lock_out(guard)
    (alert,) = alerts.active()
    assert alert["key"] == ALERT_KEY and "2 PIN lockouts in a row" in alert["message"]
    # After a restart the alert is raised again from the saved count (alerts live in RAM).
    fresh = Alerts()
    guard = PinGuard(path, CFG, clock=Clock(7.0), alerts=fresh)
    assert [a["key"] for a in fresh.active()] == [ALERT_KEY]
    lift(path.with_name("pin-attempts.json"))
    guard = PinGuard(path, CFG, clock=Clock(9.0), alerts=fresh)
    guard.check(PIN)
    assert fresh.active() == []


def test_the_alert_shows_in_ctl_status_and_the_systemd_status_line(tmp_path):
    p = Panel(tmp_path, panel={"pin_attempts": 2, "pin_alert_lockouts": 1})
    try:
        p.set_pin()
        p.post("/lock")
        room = RoomStatus(p.controller, p.sync, Supervisor(1.0, 1.0))
        assert handle_request(room, {"cmd": "status"})["status"]["alerts"] == []
        for _ in range(2):
            r = p.post("/unlock", {"pin": "9999", "next": "/history"})
        assert "blocked for 60 seconds" in p.get(r.location).get_data(as_text=True)
        (alert,) = handle_request(room, {"cmd": "status"})["status"]["alerts"]
        assert "1 PIN lockouts in a row" in alert["message"] and alert["since"] > 0
        assert "ALERT: 1 PIN lockouts in a row" in room.line()
        failed = [e.detail for e in p.store.audit_events() if e.action == "panel:pin-failed"]
        assert failed[-1]["lockout_s"] == 60
    finally:
        p.close()


@pytest.mark.slow
def test_lan_mode_needs_6_digit_pins_and_a_shorter_old_pin_works_only_on_the_device(tmp_path):
    path = tmp_path / "panel" / "pin.json"
    PinGuard(path, PanelConfig()).set_pin(PIN, PIN)  # set before LAN mode was turned on
    lan = PinGuard(path, PanelConfig(lan=True))
    with pytest.raises(PinError, match="must be 6 to 12 digits"):
        lan.set_pin("2580", "2580")
    lan.check(PIN)  # the device's own screen: still opens (to change it)
    with pytest.raises(PinError, match="too short to be used over the network"):
        lan.check(PIN, over_network=True)
    assert not path.with_name("pin-attempts.json").exists()  # the right PIN is not counted as a guess
    lan.set_pin("258046", "258046")
    lan.check("258046", over_network=True)


def test_the_alert_reaches_the_clinic_on_the_status_topic(pki: Pki, broker: Broker, clinic: ClinicServer,
                                                          tmp_path: Path):
    cfg = device_config(pki, broker, "dev-a", tmp_path / "dev")
    store = open_store(cfg.store_path)
    alerts = Alerts()
    sync = SyncService(cfg, store, alerts=alerts)
    stop = threading.Event()
    thread = threading.Thread(target=sync.run, args=(stop,), daemon=True)
    thread.start()
    try:
        def status() -> dict:
            return clinic.repo.device_status("dev-a") or {}
        wait_until(lambda: status().get("state") == "online", 10, "online")
        assert not status().get("alerts")
        t0 = time.monotonic()
        alerts.raise_alert(ALERT_KEY, "3 PIN lockouts in a row on the touch panel")
        wait_until(lambda: status().get("alerts"), 10, "alert at the clinic")
        assert time.monotonic() - t0 < 10  # now, not at the next 30 s status beat
        assert status()["alerts"][0]["message"] == "3 PIN lockouts in a row on the touch panel"
        alerts.clear(ALERT_KEY)
        wait_until(lambda: not status().get("alerts"), 10, "alert cleared at the clinic")
    finally:
        stop.set()
        thread.join(10)
        store.close()
