"""The one check for where the panel may send a browser back to (`next`, `back` form fields).

Only a path on this panel: it starts with a single "/", and has no scheme, no host, no
backslash, no whitespace or control character. Browsers drop tabs and newlines from URLs
and read "\\" as "/", so "/\\t/evil.example/" and "/\\evil.example" would leave the device.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_target(target: object, default: str = "/") -> str:
    """``target`` if it is a path on this panel, else ``default``."""
    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//"):
        return default
    if any(not ("!" <= ch <= "~") for ch in target) or "\\" in target:  # printable ASCII, no space
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target
