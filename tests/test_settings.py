"""The settings definition (avvp/config.schema.yaml) is the one place a setting's default lives.

* config.yaml and docs/configuration.md are what ``avvp config-doc`` generates from it;
* no module, rule or Snakefile writes a setting's default a second time (a ``.get(key, literal)``
  fallback, a ``dict(key=literal)``, a module-level dict of defaults). A value that only looks
  like one (a recipe, a library function's own default, a fallback for old records) says why on
  its line or the line before, with a comment ``# settings: <why>``;
* README.md holds no table of settings of its own;
* :func:`avvp.settings.complete` fills every default, checks once and names the key.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from avvp import config_doc, settings
from avvp.infra.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

# Second definitions allowed: none (entries: (file, key)).
ALLOWED: set[tuple[str, str]] = set()


# ------------------------------------------------------------------------- generated files

def test_generated_files_are_up_to_date():
    for path, text in config_doc.generated(REPO).items():
        assert path.read_text() == text, (f"{path.relative_to(REPO)} differs from the settings schema: "
                                          f"edit avvp/config.schema.yaml, not the file, and run `avvp config-doc`")


def test_config_doc_command_writes_and_checks(tmp_path, capsys):
    from avvp.cli import main

    assert main(["config-doc", "--check", "--root", str(REPO)]) == 0
    assert main(["config-doc", "--check", "--root", str(tmp_path)]) == 1
    assert "config.yaml: differs from the settings schema" in capsys.readouterr().out
    assert main(["config-doc", "--root", str(tmp_path)]) == 0
    assert (tmp_path / "config.yaml").read_text() == (REPO / "config.yaml").read_text()
    assert main(["config-doc", "--check", "--root", str(tmp_path)]) == 0
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temporary left


def test_config_yaml_is_the_default_config():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert config == settings.defaults()
    assert settings.complete(config) == config


def test_the_workflow_reads_the_packaged_schema():
    link = REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert link.is_symlink() and link.resolve() == (REPO / "avvp" / settings.SCHEMA_FILE).resolve()
    assert "config.schema.yaml" in (REPO / "pyproject.toml").read_text()


def test_every_setting_has_a_default_and_a_meaning():
    leaves = settings.leaf_keys()
    assert len(leaves) > 150
    for key, node in leaves.items():
        assert node.get("description"), f"{key} has no description"
        if not key.startswith("features.") or key.count(".") == 1:
            assert "default" in node, f"{key} has no default"


def test_readme_and_docs_hold_no_settings_table_of_their_own():
    keys = set(settings.leaf_keys())
    row = re.compile(r"^\|\s*`([a-z_]+(?:\.[a-z_]+)+)`\s*\|", re.M)
    for path in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        if path == REPO / config_doc.REFERENCE_FILE:
            continue
        named = [k for k in row.findall(path.read_text()) if k in keys]
        assert len(named) < 5, f"{path.relative_to(REPO)} has a table of settings ({named[:5]}...): " \
                               f"link docs/configuration.md instead"
    assert "docs/configuration.md" in (REPO / "README.md").read_text()


# ------------------------------------------------------------------------- complete, check

def test_complete_fills_defaults_and_names_the_key():
    config = settings.complete({"dataset": "x", "data": {"source": "synth"}, "train": {"lr": 0.01}})
    assert config["train"]["lr"] == 0.01 and config["train"]["epochs"] == settings.default("train.epochs")
    assert config["features"]["shards"] == settings.default("features.shards") == 2
    with pytest.raises(ConfigError, match=r"train\.lr: -1 is less than or equal to the minimum of 0"):
        settings.complete({"train": {"lr": -1}})
    with pytest.raises(ConfigError, match=r"unknown setting 'train\.contrastive\.temperature'"):
        settings.complete({"train": {"contrastive": {"temperature": 1}}})
    with pytest.raises(ConfigError, match=r"recipes\.han\.train\.epochs: 0 is less than the minimum of 1"):
        settings.complete({"recipes": {"han": {"train": {"epochs": 0}}}})
    with pytest.raises(ConfigError, match=r"features\.frame\.crop \(64\) is larger"):
        settings.complete({"features": {"frame": {"extractor": "resnet152", "size": 32, "crop": 64}}})
    with pytest.raises(ConfigError, match="dataset"):
        settings.complete({"dataset": "../x"})


def test_complete_section_and_recipes_are_not_filled():
    train = settings.complete_section("train", {"epochs": 3})
    assert train["epochs"] == 3 and train["denoise"]["warm_up_epoch"] == settings.default("train.denoise.warm_up_epoch")
    config = settings.complete({"recipes": {"han": {"train": {"epochs": 30}}}})
    assert config["recipes"] == {"han": {"train": {"epochs": 30}}}  # overrides stay overrides
    with pytest.raises(ConfigError, match=r"train\.denoise\.schedule: 'cubic' is not one of"):
        settings.complete_section("train.denoise", {"schedule": "cubic"})


# ------------------------------------------------------------------------- one default each

def _leaf_names() -> set[str]:
    return {key.rsplit(".", 1)[-1] for key in settings.leaf_keys()}


def _literal(node: ast.AST) -> bool:
    """A literal default: a constant, or a list/tuple/dict of them (not None, "", "?" or empty)."""
    if isinstance(node, ast.Constant):
        return node.value not in (None, "", "?")
    if isinstance(node, (ast.List, ast.Tuple, ast.Dict)) and not (node.keys if isinstance(node, ast.Dict)
                                                                   else node.elts):
        return False
    if isinstance(node, ast.UnaryOp):
        return _literal(node.operand)
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(v is not None and _literal(v) for v in node.values)
    return False


MARKER = "# settings: "


def _marked(lines: list[str], lineno: int) -> bool:
    return any(MARKER in lines[i] for i in (lineno - 2, lineno - 1) if 0 <= i < len(lines))


def python_defaults(path: Path, names: set[str]) -> list[tuple[str, str]]:
    """``(name, where)`` of each second definition of a setting's default in one Python file (see
    the module doc); name: the key, or the variable of a dict of defaults."""
    text = path.read_text()
    tree, lines = ast.parse(text, str(path)), text.splitlines()
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr in ("get", "setdefault") and len(node.args) == 2
                and isinstance(node.args[0], ast.Constant) and node.args[0].value in names
                and _literal(node.args[1])):
            found.append((node.args[0].value,
                          f"{path}:{node.lineno}: .{func.attr}({node.args[0].value!r}, {ast.unparse(node.args[1])})"))
        getter = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if (getter.endswith("_config") and len(node.args) == 2 and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in names and _literal(node.args[1])):  # W.feature_config("k", 1)
            found.append((node.args[0].value,
                          f"{path}:{node.lineno}: {getter}({node.args[0].value!r}, {ast.unparse(node.args[1])})"))
        if isinstance(func, ast.Name) and func.id == "dict":
            named = [k.arg for k in node.keywords if k.arg in names and _literal(k.value)]
            if len(named) >= 2:
                found.append((named[0], f"{path}:{node.lineno}: dict({', '.join(named)}=...)"))
    for node in tree.body:  # module-level dicts of defaults
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if isinstance(value, ast.Dict):
            named = [k.value for k, v in zip(value.keys, value.values)
                     if isinstance(k, ast.Constant) and k.value in names and _literal(v)]
            if len(named) >= 3:
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                found.append((ast.unparse(target), f"{path}:{node.lineno}: a dict of defaults ({', '.join(named)})"))
    return [(name, where) for name, where in found if not _marked(lines, int(where.split(":")[1]))]


# .get("key", fallback), and the rules' own getters: feature_config("key", fallback)
_SMK_GET = re.compile(r"""(?:\.get|\b\w+_config)\(\s*["'](\w+)["']\s*,\s*(?!None\s*\))([^)\s][^)]*)\)""")


def workflow_defaults(path: Path, names: set[str]) -> list[tuple[str, str]]:
    """``(key, where)`` of each ``.get("key", literal)`` fallback in a Snakefile or .smk file."""
    found = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        for match in _SMK_GET.finditer(line):
            key, fallback = match.groups()
            empty = fallback.strip() in ("{}", "[]", "()", '""', "''", '"?"', "'?'")
            if key in names and not empty:
                found.append((key, f"{path}:{lineno}: {match.group(0)}"))
    return found


#: The settings definition's own tools.
_PY_EXEMPT = {"avvp/settings.py", "avvp/config_doc.py"}


def default_duplicates(root: Path) -> tuple[list[str], list[str]]:
    """(second definitions found, those allowed by :data:`ALLOWED`) under ``root``."""
    names = _leaf_names()
    found, allowed = [], []
    python = [p for p in sorted((root / "avvp").rglob("*.py")) if str(p.relative_to(root)) not in _PY_EXEMPT]
    smk = sorted((root / "workflow").rglob("*.smk")) + [p for p in [root / "Snakefile"] if p.exists()]
    for path in python + smk:
        rel = str(path.relative_to(root))
        scan = python_defaults if path.suffix == ".py" else workflow_defaults
        for name, where in scan(path, names):
            (allowed if (rel, name) in ALLOWED else found).append(where)
    return found, allowed


def test_no_default_is_written_twice():
    found, allowed = default_duplicates(REPO)
    assert not found, "defaults written outside avvp/config.schema.yaml (use avvp.settings):\n" + \
        "\n".join(found)
    assert not allowed, allowed


def test_the_duplicate_scan_can_fail(tmp_path):
    (tmp_path / "avvp").mkdir()
    (tmp_path / "workflow" / "rules").mkdir(parents=True)
    (tmp_path / "avvp" / "mod.py").write_text(
        'DEFAULTS = {"shards": 4, "threads": 2, "prefetch": 4}\n'
        'def f(s):\n    return s.get("warm_up_epoch", 0.9), dict(lr=3e-4, epochs=12), s.get("seed")\n'
        'def g(w):\n    return w.feature_config("threads", 2)\n'
        'RECIPE = {"epochs": 60, "lr": 1e-4, "loss": "valor"}  # settings: a recipe, not defaults\n')
    (tmp_path / "workflow" / "rules" / "x.smk").write_text(
        'N = config["features"].get("shards", 1)\nM = config.get("parse", {})\nT = feature_config("threads", 2)\n')
    found, allowed = default_duplicates(tmp_path)
    text = "\n".join(found)
    assert "a dict of defaults (shards, threads, prefetch)" in text
    assert ".get('warm_up_epoch', 0.9)" in text and "dict(lr, epochs=...)" in text
    assert "feature_config('threads', 2)" in text
    assert 'x.smk:1: .get("shards", 1)' in text and 'x.smk:3: feature_config("threads", 2)' in text
    assert "seed" not in text and "parse" not in text and "RECIPE" not in text and not allowed
