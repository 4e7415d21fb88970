"""Where a panel request comes from (the device itself or the LAN) and where a form may send the
browser back to. Used by the app factory and the views alike, so neither imports the other."""

from __future__ import annotations

import ipaddress

from flask import request

from common.websafety import safe_target


def is_loopback(addr: str | None) -> bool:
    """True for the kiosk on the device itself (127.0.0.1, ::1), False for the LAN or no address."""
    try:
        return addr is not None and ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def back_to(default: str) -> str:
    """The local page a form asked to return to (no Referer is sent: Referrer-Policy no-referrer)."""
    return safe_target(request.form.get("back"), default)


def next_page(default: str = "/") -> str:
    """The local page to show after unlocking (`next` in the query or the form)."""
    return safe_target(request.values.get("next"), default)
