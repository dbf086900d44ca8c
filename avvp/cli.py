"""The ``avvp`` command line: one subcommand per pipeline stage.

Each module in :mod:`avvp.commands` defines ``register(subparsers)``, which adds its subcommand
and sets ``func`` on the parser (called with the parsed arguments). The CLI discovers them, so a
stage is added by adding one module. The command ``foo-bar`` lives in ``commands/foo_bar.py``;
when it is named on the command line only that module is imported, so a Snakemake job does not
pay for importing every stage (torch alone takes seconds).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import __version__, commands
from .errors import AvvpError


def command_modules() -> list[str]:
    """Names of the modules in :mod:`avvp.commands`, sorted."""
    return sorted(info.name for info in pkgutil.iter_modules(commands.__path__))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``only`` (a module name), just that subcommand is registered."""
    parser = argparse.ArgumentParser(
        prog="avvp",
        description="Weakly-supervised audio-visual video parsing: synthesise or read data, "
        "extract features, train HAN / MA, refine labels, evaluate, parse videos.",
    )
    parser.add_argument("--version", action="version", version=f"avvp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in [only] if only else command_modules():
        module = importlib.import_module(f"{commands.__name__}.{name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    named = [a.replace("-", "_") for a in argv if not a.startswith("-")][:1]
    only = named[0] if named and named[0] in command_modules() else None
    parser = build_parser(only)
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
