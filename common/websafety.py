"""Web safety shared by the room's touch panel (appliance/panel) and the clinic web view
(clinic/web): the Content-Security-Policy and other response headers, the CSRF token, the one
check for where a form may send a browser back to, and the server's TLS context. Public on
purpose: both Flask apps import it, neither reaches into the other.

Safe redirects: only a path on this site. It starts with a single "/", and has no scheme, no host,
no backslash, no whitespace or control character. Browsers drop tabs and newlines from URLs and
read "\\" as "/", so "/\\t/evil.example/" and "/\\evil.example" would leave the site.
"""

from __future__ import annotations

import hmac
import secrets
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from flask import Response, request, session

# Scripts, styles, fonts and images from the app itself only: no inline script or style, no CDN.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def safe_target(target: object, default: str = "/") -> str:
    """``target`` if it is a path on this site, else ``default``."""
    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//"):
        return default
    if any(not ("!" <= ch <= "~") for ch in target) or "\\" in target:  # printable ASCII, no space
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def csrf_token() -> str:
    """The session's CSRF token (made on first use); forms send it as `csrf_token`, scripts as X-CSRF-Token."""
    tok = session.get("csrf")
    if not tok:
        tok = session["csrf"] = secrets.token_urlsafe(32)
    return tok


def csrf_ok() -> bool:
    """True for a safe method, or a request that carries the session's token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return True
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    return bool(expected and sent and hmac.compare_digest(sent, expected))


def security_headers(resp: Response, *, hsts: bool) -> Response:
    """CSP and the rest on every response; pages are never cached (they show patient data)."""
    h = resp.headers
    h["Content-Security-Policy"] = CSP
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "DENY"
    h["Referrer-Policy"] = "no-referrer"
    h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    if request.endpoint != "static":
        h["Cache-Control"] = "no-store"
    if hsts:
        h["Strict-Transport-Security"] = "max-age=31536000"
    return resp


def tls_context(cert_file: str, key_file: str, section: str) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 and up) from PEM files; ValueError naming `<section>.tls_cert`/`tls_key`."""
    for key, path in (("tls_cert", cert_file), ("tls_key", key_file)):
        if not Path(path).is_file():
            raise ValueError(f"{section}.{key}: file not found: {path}")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    return ctx
