"""`appliance` command line: run the daemon, check config, control and inspect visits."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.asr.registry import ENGINES
from appliance.config import ApplianceConfig, load_config, rules
from appliance.config.loader import resolve_path
from common import jsontext
from common.config import ConfigError
from common.config.option import config_option_parser

EXIT_USAGE = 2


def _load(args: argparse.Namespace) -> ApplianceConfig:
    return load_config(getattr(args, "config", None))


def _file(args: argparse.Namespace) -> str:
    """The config file named in messages: --config, $APPLIANCE_CONFIG or the default path."""
    return resolve_path(getattr(args, "config", None))[0]


def cmd_run(args: argparse.Namespace) -> int:
    from appliance.daemon.logging_setup import setup_logging
    from appliance.daemon.service import run_daemon

    cfg = _load(args)
    # The same rules as `config check`; the panel and sync parts are enforced where those start.
    if refused := rules.errors(rules.check(cfg, "daemon")):
        for problem in refused:
            print(f"config error: {problem.as_error(_file(args))}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(cfg.daemon.log_level)
    return run_daemon(cfg)


def cmd_config_check(args: argparse.Namespace) -> int:
    path = args.file or getattr(args, "config", None)
    cfg = load_config(path)
    file = resolve_path(path)[0]
    problems = rules.check(cfg)  # what start-up enforces, part by part
    for problem in problems:
        outcome = "" if problem.warning else f" ({rules.EFFECT[problem.part]})"
        print(f"config {'warning' if problem.warning else 'error'}: {problem.as_error(file)}{outcome}",
              file=sys.stderr)
    if rules.errors(problems):
        return EXIT_USAGE
    print(f"config OK: device {cfg.device.id!r}, room {cfg.device.room!r}, capture {cfg.capture.source}")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    from appliance.config.docs import render_toml

    print(render_toml(_load(args)), end="")
    return 0


def cmd_config_docs(_args: argparse.Namespace) -> int:
    from appliance.config.docs import render_markdown

    print(render_markdown(), end="")
    return 0


def cmd_devices(_args: argparse.Namespace) -> int:
    from appliance.capture import list_input_devices

    devices = list_input_devices()
    if not devices:
        print("no audio input devices found")
        return 1
    for d in devices:
        print(f"{d.name!r}: {d.max_input_channels} channels, {int(d.default_rate)} Hz")
    return 0


def cmd_ctl(args: argparse.Namespace) -> int:
    from appliance.daemon.control import send_command

    cfg = _load(args)
    req: dict[str, Any] = {"cmd": args.action}
    if args.action == "start":
        req.update(name=args.name, templates=args.template or [], consent=args.consent)
    try:
        reply = send_command(cfg.daemon.control_socket, req)
    except (FileNotFoundError, ConnectionRefusedError):
        print(f"error: the daemon is not running (no socket at {cfg.daemon.control_socket})", file=sys.stderr)
        return 1
    print(jsontext.dumps(reply, indent=2))
    return 0 if reply.get("ok") else 1


def cmd_sessions(args: argparse.Namespace) -> int:
    from appliance.store import SessionClosed, SessionNotFound, open_store

    cfg = _load(args)
    store = open_store(cfg.store_path)
    try:
        if args.action == "list":
            for s in store.list_sessions():
                flag = " (interrupted)" if s.interrupted else ""
                print(f"{s.id}  {s.state:<9}{flag}  {s.name or '-':<12} {s.recorded_seconds:7.1f} s")
            return 0
        try:
            session = store.get_session(args.id)
            segments = store.read_transcript(args.id, actor="cli", reason=args.reason)
        except (SessionNotFound, SessionClosed) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        out = [{"id": g.id, "start": g.start, "end": g.end, "speaker": g.speaker, "text": g.text}
               for g in segments]
        print(jsontext.dumps({"id": session.id, "state": session.state, "name": session.name,
                          "interrupted": session.interrupted, "no_speech": not out, "segments": out}, indent=2))
        return 0
    finally:
        store.close()


def cmd_transcribe(args: argparse.Namespace) -> int:
    import dataclasses

    from appliance.asr.factory import engine_for_model
    from appliance.capture import CaptureError
    from appliance.models import ModelError
    from appliance.speech.engines import build_engine, refiner_engine
    from appliance.speech.offline import transcribe_file

    cfg = _load(args)
    if args.models_dir:
        cfg = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, models_dir=args.models_dir))
    asr = cfg.asr
    if args.model:  # a directory here, else an installed model's name; it decides the engine unless --engine does
        model = str(Path(args.model).resolve()) if Path(args.model).is_dir() else args.model
        with contextlib.suppress(ModelError):  # (a model that cannot load is named by build_engine below)
            asr = dataclasses.replace(asr, engine=engine_for_model(cfg.paths.models_dir, model, prefer=asr.engine))
        asr = dataclasses.replace(asr, model=model)
    if args.engine:
        asr = dataclasses.replace(asr, engine=args.engine)
    if args.threads:
        asr = dataclasses.replace(asr, threads=args.threads)
    if args.refine:
        asr = dataclasses.replace(asr, refine_model=args.refine)
    cfg = dataclasses.replace(cfg, asr=asr)
    if not Path(args.audio).is_file():
        print(f"error: audio file not found: {args.audio}", file=sys.stderr)
        return EXIT_USAGE
    engine, unavailable = build_engine(cfg)
    if unavailable:
        print(f"error: {unavailable}", file=sys.stderr)
        return EXIT_USAGE
    try:
        refiner = refiner_engine(cfg, engine)
    except (ModelError, OSError, ValueError) as exc:
        print(f"error: the refined pass's model (asr.refine_model): {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = transcribe_file(cfg, engine, args.audio, refiner=refiner)
    except (CaptureError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    names = result.speaker_names
    segments: list[dict[str, Any]] = []
    for live, line in zip(result.segments, result.refined or result.segments, strict=True):
        if line.text:
            segments.append({"start": line.start, "end": line.end,
                             "speaker": names.get(line.speaker, line.speaker) or "unknown",
                             "speaker_uncertain": line.uncertain, "text": line.text,
                             **({"live_text": live.text} if live.text != line.text else {})})
    if args.json:
        print(jsontext.dumps(segments, indent=2, ensure_ascii=False))
    else:
        for g in segments:
            print(f"[{g['start']:7.2f} – {g['end']:7.2f}] {g['speaker']}: {g['text']}")
    if not segments:
        print(f"no speech detected in {args.audio}", file=sys.stderr)
    if result.stats.asr_events:  # e.g. "short": text implausibly short for the speech, decoded again
        print("recognition events: " + ", ".join(f"{n} {k}" for k, n in sorted(result.stats.asr_events.items())),
              file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from appliance.demo.run import run_demo

    return run_demo(models_dir=args.models_dir, audio=args.audio, fast=args.fast, port=args.port, keep=args.keep)


def _usage(parser: argparse.ArgumentParser) -> int:
    """A command given without its action: its help, exit status 2."""
    parser.print_help()
    return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser_class = config_option_parser(
        "config file (default $APPLIANCE_CONFIG or /etc/appliance/appliance.toml); before or after the command"
    )
    p = parser_class(
        prog="appliance",
        description="Exam-room scribe appliance: records a visit, transcribes it on the device, "
        "and sends only the transcript to the clinic.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=fn)
        return sp

    add("run", cmd_run, "run the room daemon (capture, speech pipeline, control socket) until SIGTERM")

    cfg = add("config", lambda _a: _usage(cfg), "check, show or document the config file")
    csub = cfg.add_subparsers(dest="config_command", metavar="ACTION")
    check_help = ("validate a config file, cross-field rules of start-up included (docs/config.md); "
                  "exit 2 naming the bad key, value and file")
    c = csub.add_parser("check", help=check_help, description=check_help)
    c.add_argument("file", nargs="?", help="file to check (default: the file the daemon would read)")
    c.set_defaults(func=cmd_config_check)
    csub.add_parser("show", help="print the effective config as TOML").set_defaults(func=cmd_config_show)
    csub.add_parser("docs", help="print the config reference (docs/config.md)").set_defaults(func=cmd_config_docs)

    add("devices", cmd_devices, "list audio input devices (choose one by a substring of its name)")

    ctl = add("ctl", cmd_ctl, "control the running daemon: status, start, pause, resume, stop")
    ctl.add_argument("action", choices=["status", "start", "pause", "resume", "stop"])
    ctl.add_argument("--name", default="", help="start: session name (patient initials or identifier)")
    ctl.add_argument("--template", action="append", help="start: note template to request (repeatable)")
    ctl.add_argument("--consent", action="store_true", help="start: verbal consent was given")

    ses = add("sessions", cmd_sessions, "list visits on this device, or show one transcript (audited)")
    ssub = ses.add_subparsers(dest="action", required=True, metavar="ACTION")
    ssub.add_parser("list", help="list visits with their state")
    show = ssub.add_parser("show", help="print one visit's transcript as JSON (the read is audited)")
    show.add_argument("id")
    show.add_argument("--reason", default="cli", help="reason recorded in the audit log")

    tr = add("transcribe", cmd_transcribe,
             "transcribe a WAV/FLAC file (mono or multichannel) through the same pipeline as the daemon")
    tr.add_argument("audio", help="recording to transcribe")
    tr.add_argument("--json", action="store_true",
                    help='print a JSON array of segments {"start", "end", "speaker", "text"}')
    tr.add_argument("--model", help="installed model name or model directory; the engine follows it unless "
                    "--engine is given (default: asr.model under paths.models_dir)")
    tr.add_argument("--models-dir", help="installed models, incl. the VAD (default: paths.models_dir)")
    tr.add_argument("--engine", choices=[s.name for s in ENGINES.specs() if s.needs_model],
                    help="recognition engine (default: asr.engine)")
    tr.add_argument("--threads", type=int, help="inference threads (default: asr.threads)")
    tr.add_argument("--refine", metavar="MODEL", help="also the refined pass with this installed model, as the "
                    "daemon runs it (default: asr.refine_model); the refined text is printed, and --json gives "
                    "each changed line's live text as \"live_text\"")

    from appliance.models.cli import add_models_parser

    add_models_parser(sub)

    demo = add("demo", cmd_demo, "the whole path on this machine: Mosquitto (TLS, ACL, demo certificates), the "
               "clinic server and the room daemon; the bundled recording replayed as the microphone, the visit "
               "stopped and sent on the panel, the SOAP note printed. Ctrl-C stops everything; without a "
               "terminal or with DEMO_ONCE=1 it ends after the note")
    demo.add_argument("--models-dir", default="models", help="installed models (appliance models install --dir)")
    demo.add_argument("--audio", help="replay this WAV/FLAC instead of the bundled recording")
    demo.add_argument("--fast", action="store_true", help="replay as fast as possible instead of in real time")
    demo.add_argument("--port", type=int, default=8080, help="panel port (another free one if taken)")
    demo.add_argument("--keep", action="store_true", help="keep the demo's temporary folder (logs, stores)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
