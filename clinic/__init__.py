"""Clinic server: receives transcripts from room devices (see docs/sync-protocol.md, issue 6)."""

__version__ = "0.1.0"
