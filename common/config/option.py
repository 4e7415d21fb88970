"""`--config FILE` accepted before or after the command (`appliance --config F run` and
`appliance run --config F`): the systemd unit, the README and people write both."""

from __future__ import annotations

import argparse
from typing import Any


def config_option_parser(help_text: str) -> type[argparse.ArgumentParser]:
    """An ArgumentParser class whose every instance, subcommand parsers included, takes --config.

    argparse builds subcommand parsers with the parent's class, so one class covers every level.
    SUPPRESS keeps a level where the option is absent from overwriting one given at another level;
    read the value with ``getattr(args, "config", None)``.
    """

    class ConfigOptionParser(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=help_text)

    return ConfigOptionParser
