"""The documentation: the MkDocs site builds in strict mode, the README keeps its two set-up commands
and its links, and no docstring cites the specification files users do not have."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def build_site(root: Path, site: Path) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of the site whose ``mkdocs.yml`` is in ``root``."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root, env=env, capture_output=True, text=True, timeout=120)


def nav_pages(nav) -> list[str]:
    """Every page path of a ``nav`` entry, depth first."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for v in nav.values() for p in nav_pages(v)]
    return [p for v in nav for p in nav_pages(v)]


def test_site_builds_in_strict_mode(tmp_path):
    """Every page of the nav is built and nothing warns (broken links, anchors, pages off the nav)."""
    result = build_site(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = nav_pages(config["nav"])
    docs = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(pages) == docs, "every page under docs/ is in the nav of mkdocs.yml, once"
    for page in pages:
        stem = page[:-len(".md")]
        html = "index.html" if stem == "index" else (
            stem[:-len("/index")] + "/index.html" if stem.endswith("/index") else stem + "/index.html")
        assert (tmp_path / "site" / html).is_file(), html


def test_strict_build_fails_on_a_broken_link(tmp_path):
    """The check above can fail: a link to a missing page stops the strict build, naming it."""
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", copy / "docs")
    page = copy / "docs" / "tutorial.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no_such_page.md).\n")
    result = build_site(copy, tmp_path / "site")
    assert result.returncode != 0
    assert "no_such_page.md" in result.stdout + result.stderr


SETUP = ["pip install -r envs/requirements.txt", "python -m pytest -q"]


def test_readme_holds_exactly_the_two_setup_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert blocks and blocks[0].strip().splitlines() == SETUP
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for comment, command in zip(["# README: install", "# README: test"], SETUP):
        assert ci[ci.index(comment) + 1] == command


def test_readme_is_short_and_its_links_exist():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert local, "the README links the documentation"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, missing


#: A citation of the specification files (``official.md §c``, ``jomold.md``, ``valor.md §3``); a
#: link to a page of the documentation site (``docs/valor.md``) is not one.
SPEC_CITATION = re.compile(r"(?<![\w/.-])(official|jomold|valor)\.md\b")


def spec_citations(text: str) -> list[str]:
    return [m.group(0) for m in SPEC_CITATION.finditer(text)]


def test_spec_citation_pattern():
    assert spec_citations("HAN (official.md §c) and JoMoLD (jomold.md §3.2), valor.md §4") == [
        "official.md", "jomold.md", "valor.md"]
    assert spec_citations("see docs/valor.md and docs/methods/jomold.md") == []


def test_no_docstring_cites_the_specification_files():
    """Users do not have official.md / jomold.md / valor.md: docs pages cite the official code."""
    found = []
    for folder in ("avvp", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if spec_citations(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


def mentioned_paths(text: str) -> set[str]:
    """Repository paths in code spans (``avvp/stages/train.py``, ``workflow/rules/``), placeholders left out."""
    spans = re.findall(r"`((?:avvp|bench|workflow|config|envs|ci|tests|docs|\.ci)/[A-Za-z0-9_./-]*)`",
                       text)
    return {s for s in spans if "<" not in s}


def mentioned_modules(text: str) -> set[str]:
    """Dotted names in code spans that start at the package (``avvp.stages.refine.METHODS``)."""
    return set(re.findall(r"`(avvp(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`", text))


def module_prefix_exists(name: str) -> bool:
    """``avvp.<module>`` at least is a module or package of the tree (attributes are not checked)."""
    parts = name.split(".")
    here = ROOT / parts[0]
    found = 0
    for part in parts[1:]:
        if (here / part).is_dir():
            here = here / part
        elif (here / f"{part}.py").is_file():
            found += 1
            break
        else:
            break
        found += 1
    return found >= 1


def test_docs_name_only_paths_and_modules_that_exist():
    """The pages describe the current tree: every file path and module they name is there."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    missing = []
    for page in pages:
        text = page.read_text()
        missing += [f"{page.name}: {p}" for p in sorted(mentioned_paths(text))
                    if not (ROOT / p).exists()]
        missing += [f"{page.name}: {m}" for m in sorted(mentioned_modules(text))
                    if not module_prefix_exists(m)]
    assert not missing, "\n".join(missing)


def test_path_and_module_checks_can_fail():
    assert mentioned_paths("see `avvp/no_such_module.py` and `clips/<id>.mp4`") == {
        "avvp/no_such_module.py"}
    assert module_prefix_exists("avvp.stages.refine.METHODS")
    assert not module_prefix_exists("avvp.no_such_module.f")
