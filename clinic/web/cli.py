"""`clinic users add|passwd|disable|enable|list` and `clinic web` (serve the clinic web view)."""

from __future__ import annotations

import argparse
import getpass
import sys

from clinic.config import ClinicConfig
from clinic.store import TranscriptStore


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = sub.add_parser("users", help="people who may log in to the clinic web view (argon2 passwords)")
    usub = users.add_subparsers(dest="action", required=True)
    add = usub.add_parser("add", help="a new user; asks for the password twice")
    add.add_argument("username")
    add.add_argument("--name", required=True, help="display name, shown with the notes this user signs")
    pw = usub.add_parser("passwd", help="set a user's password (also lifts a lockout)")
    pw.add_argument("username")
    for parser in (add, pw):
        parser.add_argument("--password-stdin", action="store_true",
                            help="read the password from the first line of stdin (scripts) instead of asking")
    for name, text in (("disable", "the user can no longer log in (signatures stay)"), ("enable", "undo disable")):
        usub.add_parser(name, help=text).add_argument("username")
    usub.add_parser("list", help="user name, display name, disabled or locked")
    web = sub.add_parser("web", help="serve the clinic web view ([web] in the config; docs/clinic-web.md)")
    web.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise SystemExit("clinic: the two passwords differ; nothing changed")
    return first


def run_users(args: argparse.Namespace, repo: TranscriptStore) -> int:
    import time

    from clinic.users import UserError, add_user, set_disabled, set_password

    try:
        if args.action == "add":
            add_user(repo, args.username, args.name, _password(args.password_stdin))
        elif args.action == "passwd":
            if repo.user(args.username) is None:
                raise UserError(f"no user {args.username!r} (see `clinic users list`)")
            set_password(repo, args.username, _password(args.password_stdin))
        elif args.action in ("disable", "enable"):
            set_disabled(repo, args.username, args.action == "disable")
        else:
            for u in repo.users():
                state = "disabled" if u.disabled else ("locked" if u.locked_until > time.time() else "active")
                print(f"{u.username:<24} {u.display_name:<32} {state}")
            return 0
    except UserError as exc:
        print(f"clinic: {exc}", file=sys.stderr)
        return 2
    repo.audit(_actor(), f"user-{args.action}", detail=args.username)
    print(f"{args.username}: {args.action} done")
    return 0


def _actor() -> str:
    from clinic.cli import reader

    return reader()


def run_web(cfg: ClinicConfig, level: str) -> int:
    import logging
    import signal
    import threading

    from clinic.web.server import WebConfigError, serve

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve(cfg, stop)
    except WebConfigError as exc:
        print(f"clinic: {exc}", file=sys.stderr)
        return 2
    return 0
