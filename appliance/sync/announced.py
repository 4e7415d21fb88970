"""The note templates the clinic announced (its retained `<prefix>/templates` message), kept in a
small file in the state folder so the panel offers them after a restart too, before the broker is
reachable. No file: the device has never heard from the clinic, and the panel offers its config."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Any

from appliance.config.schema import ApplianceConfig

log = logging.getLogger(__name__)
FILE = "clinic-templates.json"


def announced_path(cfg: ApplianceConfig) -> str:
    return os.path.join(cfg.paths.state_dir, FILE)


def save_announced(path: str, message: dict[str, Any]) -> None:
    """Replace the file with a validated scribe.templates/1 message, atomically (a crash leaves the
    old list or the new one, never half a file)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".clinic-templates-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"templates": message["templates"], "ts": message["ts"]}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_announced(path: str) -> list[str] | None:
    """The names the clinic announced last, or None if it never did (or the file is unreadable:
    then the config's list is the safe choice, and the next announcement rewrites the file)."""
    try:
        with open(path, encoding="utf-8") as fh:
            names = json.load(fh)["templates"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        log.warning("ignoring %s: not a list of template names", path)
        return None
    return names
