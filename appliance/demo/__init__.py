"""`appliance demo`: a visit from the room to the note, every part real, on one machine."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEMO_AUDIO = "demo_visit.flac"


def bundled_recording() -> Path:
    """The bundled 4-channel visit (scripts/make_demo_recording.py makes it)."""
    return Path(str(resources.files("appliance.data").joinpath(DEMO_AUDIO)))
