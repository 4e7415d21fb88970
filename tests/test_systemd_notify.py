"""SystemdNotifier against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.daemon import systemd_notify
from appliance.daemon.systemd_notify import SystemdNotifier

BACKENDS = [
    pytest.param(False, id="datagram"),
    pytest.param(
        True, id="systemd-python",
        marks=pytest.mark.skipif(systemd_notify._sd_daemon is None, reason="systemd-python not installed"),
    ),
]


def _receive_all(sock: socket.socket) -> list[str]:
    messages = []
    sock.settimeout(2.0)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
            sock.settimeout(0.2)
    except TimeoutError:
        return messages


@pytest.fixture()
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    # A short directory: sun_path holds only 108 bytes and pytest's tmp_path can be longer.
    directory = Path(tempfile.mkdtemp(prefix="sdn-", dir="/tmp"))
    path = directory / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()
    path.unlink(missing_ok=True)
    directory.rmdir()


@pytest.mark.parametrize("use_library", BACKENDS)
def test_messages_arrive(notify_socket: socket.socket, use_library: bool) -> None:
    n = SystemdNotifier(use_library=use_library)
    assert n.enabled
    assert n.ready()
    assert n.status("recording\nroom 1")
    assert n.watchdog_ping()
    assert n.stopping("finishing utterance")
    n.close()
    got = _receive_all(notify_socket)
    assert got == [
        "READY=1", "STATUS=recording room 1", "WATCHDOG=1", "STOPPING=1\nSTATUS=finishing utterance",
    ]


@pytest.mark.parametrize("use_library", BACKENDS)
def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch, use_library: bool) -> None:
    name = f"appliance-test-{os.getpid()}-{use_library}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        n = SystemdNotifier(use_library=use_library)
        assert n.ready("up")
        n.close()
        assert _receive_all(sock) == ["READY=1\nSTATUS=up"]


def test_outside_systemd_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    for use_library in (False, None):
        n = SystemdNotifier(use_library=use_library)
        assert not n.enabled
        assert n.ready() is False
        assert n.status("x") is False
        assert n.watchdog_ping() is False
        assert n.stopping() is False
        assert n.extend_timeout(30) is False
        n.close()


def test_vanished_socket_does_not_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/notify")
    n = SystemdNotifier(use_library=False)
    assert n.watchdog_ping() is False


def test_watchdog_interval() -> None:
    me = str(os.getpid())
    assert SystemdNotifier({}).watchdog_interval() is None
    assert SystemdNotifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval() == pytest.approx(15.0)
    assert SystemdNotifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": me}).watchdog_interval() == 15.0
    assert SystemdNotifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_interval() is None
    assert SystemdNotifier({"WATCHDOG_USEC": "0"}).watchdog_interval() is None
    assert SystemdNotifier({"WATCHDOG_USEC": "junk"}).watchdog_interval() is None
