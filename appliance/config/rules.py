"""Cross-field rules: what the per-key checks of the loader cannot see.

One place for them, run by `appliance config check` and at daemon start-up, so "config OK"
means the daemon serves what the file asks for. Each problem names the key and the part of
the daemon it stops:

- ``panel``: the touch panel is not served (recording by the button goes on);
- ``sync``: transcript delivery is not started (visits wait in the outbox);
- ``daemon``: `appliance run` refuses to start (exit 2).

Key files (panel TLS key, MQTT client key) readable by every user are refused in the mode
that uses them (LAN panel, sync over TLS): any local process could impersonate the panel or
the device. Readable by the group is a warning (e.g. Debian's ssl-cert group).
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from appliance.config.schema import ApplianceConfig
from common.config import ConfigError
from common.protocol import Topics, ident_error, topic_level_error

Part = Literal["panel", "sync", "daemon"]
EFFECT: dict[Part, str] = {
    "panel": "the daemon will not serve the touch panel",
    "sync": "the daemon will not start transcript sync",
    "daemon": "the daemon will not start",
}

# RFC 1123 host name labels (underscore tolerated: resolvers accept it, and so do we).
_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


@dataclass(frozen=True)
class Problem:
    part: Part
    key: str
    message: str
    value: Any = None
    warning: bool = False

    def __str__(self) -> str:
        shown = f" (got {self.value!r})" if self.value is not None else ""
        return f"{self.key}: {self.message}{shown}"

    def as_error(self, file: str) -> ConfigError:
        return ConfigError(file, self.key, self.message, self.value)


def host_error(host: str) -> str | None:
    """Why ``host`` is not a host name or IP address to connect to or bind, or None."""
    if not host.strip():
        return "must not be empty"
    if "://" in host:
        return "is a URL: give only the host name or address (the port and TLS are their own keys)"
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return "is not a host name or IP address"
    return None


def is_loopback_host(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def key_file_problem(part: Part, key: str, path: str, mode_name: str) -> Problem | None:
    """A private key other users can read: refused if any user can, a warning if the group can."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None  # a missing file is reported by the rule that needs it
    if mode & 0o007:
        return Problem(part, key, f"private key file {path} is readable by every user on the device (mode "
                       f"{mode:04o}); {mode_name} refuses it: chmod 600 (owned by the service user)")
    if mode & 0o070:
        return Problem(part, key, f"private key file {path} is readable by its group (mode {mode:04o}); "
                       "make sure only the service user is in that group, or chmod 600", warning=True)
    return None


def _panel(cfg: ApplianceConfig) -> list[Problem]:
    p = cfg.panel
    if not p.enabled:
        return []
    if why := host_error(p.host):
        return [Problem("panel", "panel.host", why, p.host)]
    if not p.lan:
        if not is_loopback_host(p.host):
            return [Problem("panel", "panel.host", "is not loopback: set panel.lan = true (with panel.tls_cert "
                            "and panel.tls_key) to serve other machines", p.host)]
        return []
    out = []
    for key, path in (("tls_cert", p.tls_cert), ("tls_key", p.tls_key)):
        if not path:
            out.append(Problem("panel", f"panel.{key}", "panel.lan = true needs panel.tls_cert and "
                               "panel.tls_key (the panel is never served to the network without TLS)"))
        elif not os.path.isfile(path):
            out.append(Problem("panel", f"panel.{key}", f"file not found: {path}"))
    if p.tls_key and (bad := key_file_problem("panel", "panel.tls_key", p.tls_key, "LAN mode (panel.lan)")):
        out.append(bad)
    return out


def _sync(cfg: ApplianceConfig) -> list[Problem]:
    s = cfg.sync
    if not s.enabled:
        return []
    out = [Problem("sync", f"device.{name}", why, value) for name, value in
           (("id", cfg.device.id), ("site", cfg.device.site)) if (why := ident_error(value))]
    if why := topic_level_error(s.topic_prefix):
        out.append(Problem("sync", "sync.topic_prefix", why, s.topic_prefix))
    if why := host_error(s.broker_host):
        out.append(Problem("sync", "sync.broker_host", why, s.broker_host))
    if not out:  # the topic is known only once its levels are valid
        topic = Topics(s.topic_prefix, cfg.device.site, cfg.device.id).transcript
        if (size := mqtt_publish_size(topic, s.chunk_bytes)) > s.broker_max_packet_bytes:
            out.append(Problem("sync", "sync.chunk_bytes", f"a chunk of this size is a {size}-byte MQTT packet, "
                               f"above sync.broker_max_packet_bytes = {s.broker_max_packet_bytes}: the broker "
                               "would drop the connection on every send", s.chunk_bytes))
    if s.tls:
        for key, path in (("ca_file", s.ca_file), ("cert_file", s.cert_file), ("key_file", s.key_file)):
            if not os.path.isfile(path):
                out.append(Problem("sync", f"sync.{key}", f"file not found: {path} (sync retries until it is "
                                   "provisioned)", warning=True))
        if bad := key_file_problem("sync", "sync.key_file", s.key_file, "sync over TLS"):
            out.append(bad)
    return out


def mqtt_publish_size(topic: str, payload_bytes: int) -> int:
    """Bytes of an MQTT 3.1.1 QoS 1 PUBLISH: fixed header, topic, packet id and payload."""
    remaining = 2 + len(topic.encode()) + 2 + payload_bytes
    length_bytes = 1 + (remaining >= 128) + (remaining >= 16_384) + (remaining >= 2_097_152)
    return 1 + length_bytes + remaining


def _daemon(cfg: ApplianceConfig) -> list[Problem]:
    p = cfg.panel
    problems = []
    if not p.templates and not p.custom_templates:
        problems.append(Problem("daemon", "panel.templates", "no note template is offered (panel.templates and "
                                "panel.custom_templates are both empty), so no visit could ever be sent", []))
    return problems + _array(cfg)


def _array(cfg: ApplianceConfig) -> list[Problem]:
    """The microphone array geometry `capture.array` names, and the clinic's own files, are usable."""
    from appliance.hardware.arrays import array_for_capture, geometries

    c = cfg.capture
    try:
        geometries(c.arrays_dir)
    except ValueError as exc:
        return [Problem("daemon", "capture.arrays_dir", str(exc), c.arrays_dir)]
    try:
        array_for_capture(c.array, "", c.arrays_dir)
    except ValueError as exc:
        return [Problem("daemon", "capture.array", str(exc), c.array)]
    return []


RULES: dict[Part, Callable[[ApplianceConfig], list[Problem]]] = {"panel": _panel, "sync": _sync,
                                                                  "daemon": _daemon}


def check(cfg: ApplianceConfig, part: Part | None = None) -> list[Problem]:
    """Every problem of ``cfg`` (or of one part), errors and warnings."""
    return [p for name, rule in RULES.items() if part in (None, name) for p in rule(cfg)]


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if not p.warning]
