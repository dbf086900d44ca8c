"""The ``avvp`` command line: one subcommand per pipeline stage.

Each module in :mod:`avvp.commands` defines ``register(subparsers)``, which adds its subcommand
and sets ``func`` on the parser (called with the parsed arguments). The CLI discovers them, so a
stage is added by adding one module. The command ``foo-bar`` lives in ``commands/foo_bar.py``;
when it is named on the command line only that module is imported, so a Snakemake job does not
pay for importing every stage (torch alone takes seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import pkgutil
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

from avvp import __version__, commands
from avvp.infra import provenance
from avvp.infra.atomic import FULL_ERRNOS, in_progress
from avvp.infra.errors import AvvpError, StorageError
from avvp.infra.malloc import lean_allocator


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
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="torch CPU threads (default: OMP_NUM_THREADS, else every core); give "
                             "each of several avvp processes run side by side its share of the cores")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in [only] if only else command_modules():
        module = importlib.import_module(f"{commands.__name__}.{name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _command_name(argv: list[str]) -> str | None:
    """The first positional argument (the command), skipping the value of ``--threads``."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--threads":
            skip = True
        elif not arg.startswith("-"):
            return arg.replace("-", "_")
    return None


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    lean_allocator()
    argv = sys.argv[1:] if argv is None else list(argv)
    named = _command_name(argv)
    only = named if named in command_modules() else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        provenance.start(command_record(args.command, argv, args))
        result = args.func(args)
    except AvvpError as exc:
        print(f"avvp {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"avvp {args.command}: error: {_interrupted()}", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in FULL_ERRNOS:
            raise
        print(f"avvp {args.command}: error: {StorageError(exc.filename or '<output>', exc.strerror)}",
              file=sys.stderr)
        return 1
    finally:
        provenance.end()
        log_resources(args.command, started)
    return int(result or 0)


def _interrupted() -> str:
    """The message of a SIGINT (Ctrl-C): what was being written, that nothing complete is lost."""
    writing = in_progress()
    where = f" while writing {writing[-1]}" if writing else ""
    return (f"interrupted (SIGINT){where}. Unfinished files were removed and completed outputs "
            "are kept; rerun the same command to go on")


def peak_memory_mb() -> float:
    """The largest resident set this process (or any one child it waited for) has had, in MB."""
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return peak * scale / 1e6


def log_resources(command: str, started: float) -> None:
    """Log the command's wall time, CPU time and peak memory (exact: the kernel's high-water
    mark, where polling monitors such as Snakemake's ``benchmark:`` may miss a short peak)."""
    cpu = sum(os.times()[:4])
    logging.getLogger("avvp.cli").info("avvp %s: %.1f s wall, %.1f s CPU, peak memory %.0f MB",
                                       command, time.perf_counter() - started, cpu, peak_memory_mb())



def command_record(command: str, argv: Iterable[str], args) -> dict:
    """The provenance record of a CLI command (:mod:`avvp.infra.provenance`) from its parsed arguments:
    its input files (an argument naming a file or a folder, or the command's own
    ``provenance_inputs``), settings and seed."""
    custom = getattr(args, "provenance_inputs", None)
    inputs = list(custom(args)) if custom is not None else list(_argument_inputs(args))
    settings = getattr(args, "settings", None)
    if isinstance(settings, str):
        with contextlib.suppress(Exception):
            from avvp.settings import parse_settings

            settings = parse_settings(settings)
    seed = next((getattr(args, k) for k in ("seed", "run_seed") if getattr(args, k, None) is not None), None)
    return provenance.make_record(command, argv, settings, seed, inputs)


def _argument_inputs(args) -> Iterator[Path]:
    for dest, value in sorted(vars(args).items()):
        if dest in provenance.OUTPUT_DESTS or callable(value):
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(item, (str, Path)) or not str(item) or "\n" in str(item):
                continue
            path = Path(item)
            with contextlib.suppress(OSError):
                if path.is_file():
                    yield path
                elif path.is_dir():
                    yield from folder_inputs(path)


def folder_inputs(folder: str | Path) -> list[Path]:
    """The files of an input folder that a record checksums: its data files (not its media, not
    hidden files); of a features folder the stores its readers use (the current pooled frame
    store instead of ``frame.h5``)."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix in provenance.DATA_SUFFIXES
                   and not p.name.endswith(provenance.SIDECAR_SUFFIX))
    from avvp.core.feature_roles import store_file

    if store_file(folder, "audio").is_file() and store_file(folder, "frame").is_file():
        from avvp.core.pooled_store import FRAME, POOLED, frame_store

        used = frame_store(folder)
        files = [p for p in files if p.name not in (FRAME, POOLED) or p == used]
    return files


if __name__ == "__main__":
    sys.exit(main())
