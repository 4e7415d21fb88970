"""Serving the panel from the daemon: werkzeug's threaded server as a supervised component.

Loopback only by default (the kiosk browser on the device). Another address needs
panel.lan = true, a TLS certificate and key, and then every page asks for the PIN.
"""

from __future__ import annotations

import logging
import ssl
import threading

from werkzeug.serving import make_server

from appliance.config import rules
from appliance.config.schema import ApplianceConfig
from appliance.daemon.controller import SessionController
from appliance.panel.app import create_app
from appliance.sync.interface import TranscriptSync
from common.websafety import tls_context

log = logging.getLogger(__name__)


class PanelConfigError(ValueError):
    """The panel settings are unsafe or incomplete; the message names the key."""


def check_exposure(cfg: ApplianceConfig) -> ssl.SSLContext | None:
    """The TLS context LAN mode needs, or None on loopback; refuse an unsafe combination.
    The rules are the config's own (appliance.config.rules), the ones `config check` runs."""
    problems = rules.check(cfg, "panel")
    for warning in problems:
        if warning.warning:
            log.warning("panel config: %s", warning)
    if errors := rules.errors(problems):
        raise PanelConfigError("; ".join(map(str, errors)))
    p = cfg.panel
    if not p.lan:
        return None
    try:
        return tls_context(p.tls_cert, p.tls_key, "panel")  # the files' presence is a rule, checked above
    except ValueError as exc:
        raise PanelConfigError(str(exc)) from None


class PanelServer:
    def __init__(self, cfg: ApplianceConfig, controller: SessionController, sync: TranscriptSync) -> None:
        self.cfg = cfg
        self.ssl_context = check_exposure(cfg)  # before anything listens
        self.app = create_app(cfg, controller, sync)

    def run(self, stop: threading.Event) -> None:
        p = self.cfg.panel
        self.app.extensions["panel"].hub.closed.clear()  # after a supervised restart
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request (and per tick) in the journal
        server = make_server(p.host, p.port, self.app, threaded=True, ssl_context=self.ssl_context)
        scheme = "https" if self.ssl_context else "http"
        log.info("panel listening on %s://%s:%d", scheme, p.host, server.server_port)
        t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, name="panel-http",
                             daemon=True)
        t.start()
        try:
            stop.wait()
        finally:
            self.app.extensions["panel"].hub.close()  # ends the event streams
            self.app.extensions["panel"].tools.cancel()
            server.shutdown()
            server.server_close()
            t.join(5)


def build_panel(cfg: ApplianceConfig, controller: SessionController, sync: TranscriptSync) -> PanelServer | None:
    """The panel the daemon supervises, or None when it is off or its settings are refused."""
    if not cfg.panel.enabled:
        return None
    try:
        return PanelServer(cfg, controller, sync)
    except (PanelConfigError, ssl.SSLError, OSError) as exc:
        # Recording (and the button) must keep working with a bad panel setting; say why loudly.
        log.error("touch panel NOT served: %s", exc)
        return None
