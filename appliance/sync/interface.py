"""What the rest of the room sees of transcript sync: one object, always present.

The composition root (appliance/daemon/room.py) builds the real SyncService when `sync.enabled`
and its config passes the rules, else DisabledSync (which says why in its status); the control
socket and the panel are handed it at construction and never ask whether there is one.
"""

from __future__ import annotations

from typing import Any, Protocol


class TranscriptSync(Protocol):
    def status(self) -> dict[str, Any]:
        """enabled, connected, broker, pending (transcripts in the outbox), last_ack_at, last_error."""
        ...

    def wake(self) -> None:
        """Look at the outbox now (e.g. right after the clinician pressed Send)."""
        ...
