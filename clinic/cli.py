"""`clinic` command line: the clinic server that receives transcripts from room devices.

Subcommands are added as the server grows (ingest over MQTT: docs/sync-protocol.md).
"""

from __future__ import annotations

import argparse

from clinic import __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clinic",
        description="Clinic server for the exam-room scribe: receives transcripts from room devices over "
        "MQTT, stores and acknowledges them, and returns notes.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    build_parser().print_help()
    return 0
