"""Serving the clinic web view: werkzeug's threaded server, loopback only unless TLS is configured."""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading

from werkzeug.serving import make_server

from clinic.config import ClinicConfig, WebConfig
from clinic.store import StoreUnavailable, open_repository
from clinic.web.app import create_app
from common.websafety import tls_context

log = logging.getLogger(__name__)


class WebConfigError(ValueError):
    """The web view cannot be served: unsafe or incomplete [web] settings (the message names the key),
    a port in use, or the store cannot be opened."""


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(w: WebConfig) -> ssl.SSLContext | None:
    """The TLS context, or None for plain HTTP on loopback; refuse the network without TLS."""
    if not w.tls_cert and not w.tls_key:
        if not _loopback(w.host):
            raise WebConfigError(f"web.host = {w.host!r} is not loopback: set web.tls_cert and web.tls_key (the "
                                 "clinic web view is never served to the network without TLS)")
        return None
    if not w.tls_cert or not w.tls_key:
        raise WebConfigError("web.tls_cert and web.tls_key go together: set both or neither")
    try:
        return tls_context(w.tls_cert, w.tls_key, "web")
    except (ValueError, ssl.SSLError) as exc:
        raise WebConfigError(str(exc)) from None


def _check_port(w: WebConfig) -> None:
    """Refuse a port we cannot listen on with a line naming the key (werkzeug would print its own
    message and exit the whole process, the clinic server with it)."""
    try:
        infos = socket.getaddrinfo(w.host, w.port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug binds
            probe.bind(infos[0][4])
    except OSError as exc:
        raise WebConfigError(f"web.port = {w.port}: cannot listen on {w.host}: {exc.strerror or exc}") from None


def serve(cfg: ClinicConfig, stop: threading.Event) -> None:
    """Serve until `stop` is set."""
    context = check_exposure(cfg.web)
    _check_port(cfg.web)
    try:
        repo = open_repository(cfg.store)
    except StoreUnavailable as exc:
        raise WebConfigError(str(exc)) from None
    server = make_server(cfg.web.host, cfg.web.port, create_app(cfg, repo), threaded=True, ssl_context=context)
    log.info("clinic web view on %s://%s:%d", "https" if context else "http", cfg.web.host, server.server_port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, name="clinic-web-http",
                              daemon=True)
    thread.start()
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        repo.close()
