"""`clinic` command line: the clinic server that receives transcripts from room devices.

    clinic run --config clinic.toml          subscribe, validate, store, acknowledge (docs/sync-protocol.md)
    clinic sessions list|show                what has been received (every show is audited)
    clinic devices [--check]                 each room's last status: online, pending visits, alerts
    clinic audit                             who read, edited, signed or exported what; who took backups
    clinic backup FILE                       online copy of the clinic store (docs/operations.md)
    clinic note / clinic command             send a note or a command (resend, purge) to a device
    clinic generate FILE --template SOAP     write a note from a transcript file (docs/clinic-notes.md)
    clinic assist SESSION --command expand   LLM suggestions on a stored note (expand, differentials, …)
    clinic templates list|check FILE         note templates
    clinic eval DATA.csv                     ROUGE and grounding against ACI-Bench reference notes
    clinic export SESSION --format fhir      a stored note as text, PDF or FHIR R4 document (audited)
    clinic users add|passwd|disable|enable   people who may log in to the clinic web view
    clinic web                               serve the clinic web view (docs/clinic-web.md)
    clinic config show                       every config key with its description
"""

from __future__ import annotations

import argparse
import logging
import os
import pwd
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from clinic import __version__
from clinic.config import ClinicConfig, describe, load_clinic_config
from clinic.export import cli as export_cli
from clinic.notes import cli as notes_cli
from clinic.web import cli as web_cli
from common import jsontext
from common.config import ConfigError
from common.config.option import config_option_parser

if TYPE_CHECKING:
    from clinic.store import TranscriptStore


def build_parser() -> argparse.ArgumentParser:
    parser_class = config_option_parser("clinic TOML config file (default: built-in defaults); before or after "
                                        "the command")
    p = parser_class(
        prog="clinic",
        description="Clinic server for the exam-room scribe: receives transcripts from room devices over "
        "MQTT, stores and acknowledges them, and returns notes.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command")
    run = sub.add_parser("run", help="serve: subscribe, validate, store, acknowledge")
    run.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    run.add_argument("--web", action="store_true", help="also serve the clinic web view ([web] in the config)")
    sessions = sub.add_parser("sessions", help="received transcripts")
    ssub = sessions.add_subparsers(dest="action", required=True)
    ls = ssub.add_parser("list", help="one line per stored (session, revision)")
    ls.add_argument("--device", help="only this device id")
    ls.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    show = ssub.add_parser("show", help="one stored transcript as JSON (writes an audit row: who, when, what)")
    show.add_argument("session_id")
    show.add_argument("--revision", type=int, help="default: the latest received")
    show.add_argument("--reason", default="", help="why it is read, kept in the audit row")
    note = sub.add_parser("note", help="send a note for a session to its device (connects with the tools' "
                          "certificate, [mqtt] tool_cert_file, so the running server stays connected)")
    for a in ("site", "device", "session"):
        note.add_argument(f"--{a}", required=True)
    note.add_argument("--revision", type=int, required=True)
    note.add_argument("--template", required=True)
    note.add_argument("--text", required=True, help="note text ('-' reads stdin)")
    cmd = sub.add_parser("command", help="ask a device to resend or purge a session (as `note`: the tools' "
                         "certificate)")
    cmd.add_argument("name", choices=("resend", "purge"))
    for a in ("site", "device", "session"):
        cmd.add_argument(f"--{a}", required=True)
    devices = sub.add_parser("devices", help="each room's last status (online/offline, visits waiting to be "
                             "sent, alerts), as received on its status topic")
    devices.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    devices.add_argument("--check", action="store_true", help="monitoring check: print only rooms that are "
                         "offline, silent or alerting, and exit 1 if there is any")
    devices.add_argument("--silent-after", type=float, default=120.0, metavar="S",
                         help="an online room not heard from for S seconds counts as silent (it reports "
                         "every 30 s; default 120)")
    audit = sub.add_parser("audit", help="the audit log: reads of transcripts and notes, edits, signatures, "
                           "exports, logins, backups")
    audit.add_argument("--session", help="only this session id")
    audit.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    backup = sub.add_parser("backup", help="copy the clinic store to a new FILE while the server runs "
                            "(SQLite online backup, checked, audited; a PostgreSQL store is backed up with pg_dump)")
    backup.add_argument("file", help="the copy; must not exist yet (it is created with mode 0600)")
    notes_cli.add_parsers(sub)
    export_cli.add_parsers(sub)
    web_cli.add_parsers(sub)
    cfg = sub.add_parser("config", help="config file keys")
    cfg.add_argument("action", choices=("show",))
    return p


def _serve(cfg: ClinicConfig, level: str, web: bool = False) -> int:
    from clinic.server import ClinicServer

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    from clinic.store import StoreUnavailable

    if web:  # the web view in a thread of its own, with its own store connection
        from clinic.web.server import WebConfigError, check_exposure, serve

        try:
            check_exposure(cfg.web)
        except WebConfigError as exc:
            print(f"clinic: {exc}", file=sys.stderr)
            return 2
    try:
        server = ClinicServer(cfg)
    except StoreUnavailable as exc:
        print(f"clinic: {exc}", file=sys.stderr)
        return 2
    if web:
        def serve_web() -> None:  # the transcripts keep flowing even if the web view cannot start
            try:
                serve(cfg, stop)
            except WebConfigError as exc:
                logging.getLogger("clinic.web").error("clinic web view NOT served: %s", exc)

        threading.Thread(target=serve_web, name="clinic-web", daemon=True).start()
    server.run(stop)
    return 0


def _publish_once(cfg: ClinicConfig, topic: str, data: bytes) -> int:
    """Connect as the tools' own identity, publish one note/command at QoS 1, wait for the broker's
    PUBACK, disconnect. Never as the server: the broker would hand the tool the server's session
    (kicking the running server, or taking the transcripts queued for a stopped one)."""
    import os

    from common.mqtt import connect, make_client

    m = cfg.mqtt
    # The shipped broker replaces the id with the certificate's name; a lab broker without TLS
    # takes it as it is, so it must differ from the server's too.
    client = make_client(f"{m.client_id}-tool-{os.getpid()}", tls=m.tls, ca_file=m.ca_file,
                         cert_file=m.tool_cert_file, key_file=m.tool_key_file)
    try:
        connect(client, m.host, m.port, m.keepalive_s, persistent=False, wait=True)
    except (OSError, ValueError) as exc:
        print(f"clinic: cannot connect to the broker {m.host}:{m.port}: {exc}", file=sys.stderr)
        return 1
    client.loop_start()
    try:
        info = client.publish(topic, data, qos=1)
        info.wait_for_publish(10)  # the broker's PUBACK: it holds the message for the device now
        if not info.is_published():
            print("clinic: broker did not acknowledge the message", file=sys.stderr)
            return 1
    finally:
        client.disconnect()
        client.loop_stop()
    return 0


def reader() -> str:
    """Who is reading, for the audit: the account running the command, and the person behind sudo."""
    name = pwd.getpwuid(os.getuid()).pw_name
    via = os.environ.get("SUDO_USER")
    return f"{name} (sudo by {via})" if via and via != name else name


def _devices(repo: TranscriptStore, as_json: bool, check: bool, silent_after: float) -> int:
    problems = 0
    for device, status, seen in repo.devices():
        age = time.time() - seen
        alerts = [a.get("key", "?") for a in status.get("alerts") or []]
        state = status.get("state", "?")
        if state == "online" and age > silent_after:
            state = "silent"  # no status beat and no last will yet: network cut or power loss
        bad = state != "online" or bool(alerts)
        problems += bad
        if check and not bad:
            continue
        if as_json:
            print(jsontext.dumps({"device_id": device, "state": state, "seen_s_ago": round(age, 1), "status": status}))
        else:
            print(f"{device:<16} {status.get('site', ''):<10} {status.get('room', '')[:16]:<16} {state:<8} "
                  f"pending {status.get('pending', 0):<5} seen {age:.0f} s ago"
                  + (f"  alerts: {', '.join(alerts)}" if alerts else ""))
    return 1 if check and problems else 0


def _backup(repo: TranscriptStore, dest: str) -> int:
    import sqlite3

    from clinic.store import NotSupported

    try:
        count = repo.backup(dest, actor=reader())
    except FileExistsError:
        print(f"clinic: backup file {dest} exists; choose a new name", file=sys.stderr)
        return 1
    except (OSError, sqlite3.Error) as exc:
        print(f"clinic: backup to {dest} failed: {exc}", file=sys.stderr)
        return 1
    except NotSupported as exc:
        print(f"clinic: {exc}", file=sys.stderr)
        return 2
    print(f"backed up {count} transcripts to {dest} ({os.path.getsize(dest) / 1e6:.1f} MB, integrity ok)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        cfg = load_clinic_config(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"clinic: {exc}", file=sys.stderr)
        return 2
    if args.command == "run":
        return _serve(cfg, args.log_level, args.web)
    if args.command == "web":
        return web_cli.run_web(cfg, args.log_level)
    if args.command == "config":
        print(describe(), end="")
        return 0
    if args.command in ("generate", "templates", "eval", "assist"):
        return notes_cli.run(args, cfg)
    if args.command in ("note", "command"):
        from clinic.server import command_message, note_message

        prefix = cfg.mqtt.topic_prefix
        try:
            if args.command == "note":
                text = sys.stdin.read() if args.text == "-" else args.text
                topic, data = note_message(prefix, args.site, args.device, args.session, args.revision,
                                           args.template, text)
            else:
                topic, data = command_message(prefix, args.site, args.device, args.name, args.session)
        except ValueError as exc:  # ProtocolError (a field the schema refuses) or a bad topic level
            print(f"clinic: {exc}", file=sys.stderr)
            return 2
        return _publish_once(cfg, topic, data)
    from clinic.store import StoreUnavailable, open_repository

    try:
        repo = open_repository(cfg.store)
    except StoreUnavailable as exc:
        print(f"clinic: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "backup":
            return _backup(repo, args.file)
        if args.command == "export":
            return export_cli.run(args, repo, reader())
        if args.command == "users":
            return web_cli.run_users(args, repo)
        if args.command == "devices":
            return _devices(repo, args.json, args.check, args.silent_after)
        if args.command == "audit":
            for e in repo.audit_log(args.session):
                if args.json:
                    print(jsontext.dumps(e.__dict__))
                else:
                    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.at))
                    what = f"{e.session_id} rev {e.revision}" if e.session_id else ""
                    print(f"{when}  {e.action:<6} {e.actor:<24} {what}  {e.detail}".rstrip())
            return 0
        if args.action == "list":
            for s in repo.list(args.device):
                if args.json:
                    print(jsontext.dumps(s.__dict__))
                else:
                    print(f"{s.session_id}  rev {s.revision:<3d} {s.device_id:<16} {s.room:<12} "
                          f"{s.segments:>5d} segments  {s.deliveries} deliveries")
            return 0
        revisions = [s.revision for s in repo.list() if s.session_id == args.session_id]
        rev = args.revision or (max(revisions) if revisions else 0)
        payload = repo.get(args.session_id, rev, actor=reader(), reason=args.reason) if rev else None
        if payload is None:
            print(f"clinic: no transcript {args.session_id} revision {args.revision or '(any)'}", file=sys.stderr)
            return 1
        print(jsontext.dumps(payload, indent=2, ensure_ascii=False))
        return 0
    finally:
        repo.close()
