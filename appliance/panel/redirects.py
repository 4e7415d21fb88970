"""The one check for where the panel may send a browser back to (`next`, `back` form fields):
shared with the clinic web view in common/websafety.py."""

from __future__ import annotations

from common.websafety import safe_target

__all__ = ["safe_target"]
