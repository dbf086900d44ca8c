"""The package's layers (docs/architecture.md): ``avvp/infra`` knows nothing of audio-visual parsing,
``avvp/core`` holds the shared concepts, ``avvp/stages`` the pipeline's steps, and the CLI
(``avvp/cli.py``, ``avvp/commands``) sits on top. Imports only run downwards:

- ``infra`` imports only ``infra`` (and the standard library and third-party packages);
- ``core`` imports ``infra`` and ``core``, the settings definition (``avvp.settings``: every
  setting's default is read from it, so a concept's default is not written a second time) and
  the results layout (``avvp.layout``, which imports nothing: a file's name is written once);
- ``stages`` imports anything but the CLI.

Modules at the top of the package (settings, experiments, the workflow helpers) are not checked.
``import avvp`` / ``from avvp import __version__`` (the package itself) is allowed everywhere.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "avvp"
#: layer -> the layers it may import from (``None``: any but those in FORBIDDEN).
ALLOWED = {"infra": {"infra"}, "core": {"infra", "core", "settings", "layout"}, "stages": None}
FORBIDDEN = {"stages": {"cli", "commands"}}


def imported_modules(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in one file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            # `from avvp import x` / `from avvp.core import x`: x may be a module
            found += [(node.lineno, f"{name}.{a.name}") for a in node.names]
    return found


def violations(package: Path) -> list[str]:
    """``file:line imports name`` for every import that runs against the layers."""
    root = package.name
    out = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        layer = rel.parts[0] if len(rel.parts) > 1 else None
        if layer not in ALLOWED:
            continue
        module = ".".join((root, *rel.with_suffix("").parts))
        module = module.removesuffix(".__init__")
        for line, name in imported_modules(path, module):
            parts = name.split(".")
            if parts[0] != root or len(parts) < 3 and parts[1:] in ([], ["__version__"]):
                continue  # outside the package, or the package itself
            target = parts[1]
            allowed, forbidden = ALLOWED[layer], FORBIDDEN.get(layer, set())
            if (allowed is not None and target not in allowed) or target in forbidden:
                out.append(f"{rel.as_posix()}:{line} imports {name}")
    return out


def test_imports_run_downwards():
    if not all((PACKAGE / layer / "__init__.py").exists() for layer in ALLOWED):
        pytest.skip("avvp/ is not grouped into infra/, core/ and stages/ yet")
    found = violations(PACKAGE)
    assert not found, "imports against the layers (infra <- core <- stages <- CLI):\n" + "\n".join(found)


def test_the_check_finds_an_upward_import(tmp_path):
    """The check can fail: planted upward imports are named, downward ones are not."""
    pkg = tmp_path / "avvp"
    for layer in ("infra", "core", "stages", "commands"):
        (pkg / layer).mkdir(parents=True)
        (pkg / layer / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("__version__ = '0'\n")
    (pkg / "infra" / "bad.py").write_text("from avvp.core import model\n")
    (pkg / "infra" / "good.py").write_text("import json\nfrom avvp import __version__\nfrom . import bad\n")
    (pkg / "core" / "bad.py").write_text("from ..stages.train import run\nimport avvp.stages.predict\n")
    (pkg / "core" / "good.py").write_text("from avvp.infra import good\nfrom . import bad\n")
    (pkg / "stages" / "bad.py").write_text("from avvp import commands\n")
    (pkg / "stages" / "good.py").write_text("from avvp.core import good\nfrom avvp.infra.good import x\n")
    assert violations(pkg) == ["core/bad.py:1 imports avvp.stages.train.run",
                               "core/bad.py:2 imports avvp.stages.predict",
                               "infra/bad.py:1 imports avvp.core.model",
                               "stages/bad.py:1 imports avvp.commands"]
