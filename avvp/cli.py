"""The ``avvp`` command line: one subcommand per pipeline stage.

Each module in :mod:`avvp.commands` defines ``register(subparsers)``, which adds its subcommand
and sets ``func`` on the parser (called with the parsed arguments). The CLI discovers them, so a
stage is added by adding one module.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import __version__, commands
from .errors import AvvpError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avvp",
        description="Weakly-supervised audio-visual video parsing: synthesise or read data, "
        "extract features, train HAN / MA, refine labels, evaluate, parse videos.",
    )
    parser.add_argument("--version", action="version", version=f"avvp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except AvvpError as exc:
        print(f"avvp {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
