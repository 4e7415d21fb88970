"""What the room says about itself to IT: `appliance ctl status` (JSON) and the systemd STATUS line.

Both come from the same three sources, handed over by the composition root: the session
controller (the visit, the microphone, storage, alerts), transcript sync, and the supervisor
(a component failing and waiting to restart shows here, not only in the journal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.daemon.controller import SessionController
from appliance.daemon.hardening import core_dumps_disabled
from appliance.daemon.supervisor import Supervisor
from appliance.sync.interface import TranscriptSync


@dataclass(frozen=True)
class RoomStatus:
    controller: SessionController
    sync: TranscriptSync
    supervisor: Supervisor

    def as_dict(self) -> dict[str, Any]:
        status = self.controller.snapshot().as_dict()
        status["alerts"] = self.controller.alerts.active()
        status["core_dumps_disabled"] = core_dumps_disabled()  # read back from the kernel
        status["sync"] = self.sync.status()
        status["components"] = [{"name": c.name, "running": c.running, "restarts": c.restarts,
                                 "last_error": c.last_error} for c in self.supervisor.states()]
        return status

    def line(self) -> str:
        """One line for systemd STATUS (`systemctl status`): the visit, then what needs attention."""
        c = self.controller
        snap = c.snapshot()
        if snap.session is None:
            line = f"idle; NOT READY: {c.unavailable}" if c.unavailable else "idle"
        else:
            line = (f"{snap.state} {snap.session.id} ({int(snap.elapsed_s // 60)}:{int(snap.elapsed_s % 60):02d}, "
                    f"{snap.segments} segments)")
            if snap.capture and snap.capture.state != "ok":
                line += f"; mic: {snap.capture.message}"
        line += "".join(f"; ALERT: {a['message']}" for a in c.alerts.active())
        return line + "".join(f"; RESTARTING: {s.name} (restart {s.restarts}: {s.last_error})"
                              for s in self.supervisor.states() if not s.healthy)
