"""Local control socket: `appliance ctl …` and provisioning scripts talk to the daemon here.

One JSON object per line in, one per line out, over a Unix socket readable only by the
service user and root (mode 0600). A malformed request gets an error reply and a log
line; it never disturbs a recording.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from appliance.daemon.controller import ControlError
from appliance.daemon.status import RoomStatus
from appliance.store import IllegalTransition
from common import jsontext

log = logging.getLogger(__name__)
MAX_REQUEST = 64 * 1024


def handle_request(room: RoomStatus, req: Any) -> dict[str, Any]:
    if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
        return {"ok": False, "error": "request must be a JSON object with a string 'cmd'"}
    cmd, actor, controller = req["cmd"], "control", room.controller
    try:
        if cmd == "status":
            return {"ok": True, "status": room.as_dict()}
        if cmd == "start":
            templates = req.get("templates", [])
            if not isinstance(templates, list) or not all(isinstance(t, str) for t in templates):
                return {"ok": False, "error": "'templates' must be a list of strings"}
            s = controller.start(name=str(req.get("name", "")), templates=tuple(templates),
                                 consent=bool(req.get("consent", False)), actor=actor)
        elif cmd in ("pause", "resume", "stop"):
            s = getattr(controller, cmd)(actor=actor)
        else:
            return {"ok": False, "error": f"unknown command {cmd!r} (status, start, pause, resume, stop)"}
    except (ControlError, IllegalTransition) as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "session": {"id": s.id, "state": s.state, "name": s.name}}


class ControlServer:
    def __init__(self, path: str, room: RoomStatus) -> None:
        self.path = path
        self.room = room  # the controller for commands, and everything `status` reports

    def run(self, stop: threading.Event) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            srv.bind(self.path)
        finally:
            os.umask(old)
        srv.listen(8)
        srv.settimeout(0.5)
        try:
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=self._serve, args=(conn,), daemon=True, name="control-conn").start()
        finally:
            srv.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                for line in _lines(conn):
                    try:
                        req = jsontext.loads(line)  # NaN would pass as true ("consent": NaN)
                    except (UnicodeDecodeError, ValueError) as exc:
                        log.warning("dropped malformed control request: %s", exc)
                        reply: dict[str, Any] = {"ok": False, "error": f"malformed JSON: {exc}"}
                    else:
                        reply = handle_request(self.room, req)
                    conn.sendall(jsontext.dumps(reply).encode() + b"\n")
            except (OSError, ValueError) as exc:
                log.warning("control connection closed: %s", exc)


def _lines(conn: socket.socket) -> Iterator[bytes]:
    buf = b""
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            return
        buf += chunk
        if len(buf) > MAX_REQUEST:
            raise ValueError("request too large")
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield line


def send_command(path: str, req: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Client side, used by `appliance ctl`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)
