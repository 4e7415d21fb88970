"""Session controller, control socket and GPIO button on one real data path (file source)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
import time

import pytest

from appliance.capture import Capture
from appliance.config import parse_config
from appliance.daemon.control import ControlServer, send_command
from appliance.daemon.controller import ControlError
from appliance.daemon.room import build_controller
from appliance.daemon.status import RoomStatus
from appliance.daemon.supervisor import Supervisor
from appliance.sync.service import DisabledSync
from tests.daemon import write_visit_wav


@pytest.fixture
def visit(tmp_path):
    wav = tmp_path / "visit.wav"
    pcm, truth = write_visit_wav(wav)
    return wav, pcm, truth


def make_controller(tmp_path, wav, realtime=True):
    cfg = parse_config({
        "paths": {"state_dir": str(tmp_path / "state")},
        "capture": {"source": "file", "file": str(wav), "realtime": realtime},
        "daemon": {"control_socket": str(tmp_path / "ctl.sock")},
        "asr": {"engine": "none"},
        "vad": {"engine": "energy"},
    })
    delivered: list[float] = []  # wall-clock time of every block that reached the pipeline

    def factory(sink):
        def spy(block):
            delivered.append(time.monotonic())
            sink(block)
        return Capture(cfg.capture, spy)

    controller = build_controller(cfg, capture_factory=factory)
    stop = threading.Event()
    worker = threading.Thread(target=controller.visit.run, args=(stop,), daemon=True)
    worker.start()
    return controller, delivered, stop


@pytest.mark.slow
def test_pause_reads_nothing_and_keeps_the_utterance_in_flight(tmp_path, visit):
    wav, _, truth = visit
    c, delivered, stop = make_controller(tmp_path, wav)
    s = c.start(name="PQ", actor="test")
    first_start = truth[0][0]
    time.sleep(first_start + 1.0)  # in the middle of the first phrase
    c.pause(actor="test")
    paused_at = time.monotonic()
    assert c.visit.drain(5)
    assert c.store.segment_count(s.id) == 1  # the phrase cut by Pause was kept
    time.sleep(2.0)
    resumed_at = time.monotonic()
    assert [t for t in delivered if paused_at <= t <= resumed_at] == []
    c.resume(actor="test")
    time.sleep(1.0)
    assert any(t > resumed_at for t in delivered)
    done = c.stop(actor="test")
    stop.set()
    assert done.state == "stopped"
    events = [e.action for e in c.store.audit_events(s.id)]
    assert "state:recording->paused" in events and "state:paused->recording" in events
    c.store.close()


def test_commands_in_the_wrong_state_are_refused_in_plain_words(tmp_path, visit):
    wav, _, _ = visit
    c, _, stop = make_controller(tmp_path, wav, realtime=False)
    with pytest.raises(ControlError, match="no visit is in progress"):
        c.pause()
    c.start(name="A")
    with pytest.raises(ControlError, match="already recording"):
        c.start(name="B")
    with pytest.raises(ControlError, match="the visit is recording"):
        c.resume()
    c.stop()
    stop.set()
    c.store.close()


def test_control_socket_survives_malformed_requests(tmp_path, visit):
    wav, _, _ = visit
    c, _, stop = make_controller(tmp_path, wav)
    path = str(tmp_path / "ctl.sock")
    server = ControlServer(path, RoomStatus(c, DisabledSync(c.store), Supervisor(1.0, 1.0)))
    t = threading.Thread(target=server.run, args=(stop,), daemon=True)
    t.start()
    for _ in range(50):
        try:
            send_command(path, {"cmd": "status"})
            break
        except OSError:
            time.sleep(0.05)
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(b"{not json\n[1,2]\n" + json.dumps({"cmd": "fly"}).encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        replies = [json.loads(line) for line in s.makefile().read().splitlines()]
    assert [r["ok"] for r in replies] == [False, False, False]
    assert "malformed JSON" in replies[0]["error"]
    assert "must be a JSON object" in replies[1]["error"]
    assert "unknown command 'fly'" in replies[2]["error"]
    assert send_command(path, {"cmd": "pause"})["error"].startswith("cannot pause")
    r = send_command(path, {"cmd": "start", "name": "ZZ", "templates": ["SOAP", "H&P"]})
    assert r["ok"] and r["session"]["state"] == "recording"
    assert send_command(path, {"cmd": "stop"})["session"]["state"] == "stopped"
    assert os.stat(path).st_mode & 0o777 == 0o600
    stop.set()
    t.join(3)
    c.store.close()


@pytest.mark.slow
def test_gpio_button_starts_pauses_and_stops_the_visit(tmp_path, visit):
    from gpiozero.pins.mock import MockFactory

    from appliance.hardware.gpio import GpioControls

    wav, _, _ = visit
    c, _, stop = make_controller(tmp_path, wav)
    gcfg = dataclasses.replace(c.cfg.gpio, enabled=True, long_press_s=0.3, blink_s=0.1)
    factory = MockFactory()
    gpio = GpioControls(gcfg, on_toggle=lambda: c.toggle(actor="button"),
                        on_pause_toggle=lambda: c.pause_toggle(actor="button"), pin_factory=factory)
    pin = factory.pin(gcfg.button_pin)

    def press(hold: float) -> None:
        pin.drive_low()
        time.sleep(hold)
        pin.drive_high()
        time.sleep(0.3)

    press(0.05)
    assert c.session is not None and c.session.state == "recording"
    press(0.6)
    assert c.session.state == "paused"
    press(0.6)
    assert c.session.state == "recording"
    sid = c.session.id
    press(0.05)
    assert c.session is None and c.store.get_session(sid).state == "stopped"
    actors = {e.actor for e in c.store.audit_events(sid) if e.action.startswith("state:")}
    assert actors == {"button"}
    gpio.close()
    stop.set()
    c.store.close()


def test_start_is_refused_in_plain_words_when_the_speech_model_is_missing(tmp_path, visit):
    wav, _, _ = visit
    cfg = parse_config({
        "paths": {"state_dir": str(tmp_path / "state"), "models_dir": str(tmp_path / "no-models")},
        "capture": {"source": "file", "file": str(wav)},
        "asr": {"engine": "whisper-onnx", "model": "whisper-tiny.en"},
    })
    c = build_controller(cfg)
    assert "whisper-tiny.en" in c.unavailable and "appliance models install" in c.unavailable
    with pytest.raises(ControlError, match="cannot start: speech recognition is not available"):
        c.start(name="NO")
    assert c.store.list_sessions() == []  # nothing half-created
    c.store.close()


def test_a_visit_without_speech_says_so(tmp_path):
    import numpy as np
    import soundfile as sf

    wav = tmp_path / "silence.wav"
    rng = np.random.default_rng(3)
    sf.write(wav, rng.normal(0, 10 ** (-70 / 20), 16000 * 4).astype(np.float32), 16000)
    c, _, stop = make_controller(tmp_path, wav, realtime=False)
    events: list[str] = []
    c.add_listener(lambda kind, _data: events.append(kind))
    s = c.start(name="QUIET")
    c.wait_source_finished(10)
    c.stop()
    stop.set()
    assert "no_speech" in events
    assert "no-speech" in [e.action for e in c.store.audit_events(s.id)]
    assert c.store.segment_count(s.id) == 0
    c.store.close()
