"""Small files: no module of the ``avvp`` package is longer than about 400 lines (issue 19)."""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "avvp"
MAX_LINES = 450

#: Modules known to be too long, still to be split. Empty this list as they are; do not add to it.
ALLOWED_LONGER = {
}


def oversized(package: Path, max_lines: int, allowed: set[str]) -> dict[str, int]:
    """Path (relative to ``package``, with ``/``) -> line count of every ``.py`` file over
    ``max_lines`` lines that is not in ``allowed``."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > max_lines and name not in allowed:
            found[name] = lines
    return found


def test_no_module_is_over_the_limit():
    too_long = oversized(PACKAGE, MAX_LINES, ALLOWED_LONGER)
    assert not too_long, (f"modules over {MAX_LINES} lines (split them into a package of one module "
                          f"per concept): {too_long}")


def test_the_check_finds_a_long_module(tmp_path):
    """The check above can fail: a long module is named unless it is allowed."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "short.py").write_text("x = 1\n" * MAX_LINES)
    assert oversized(tmp_path, MAX_LINES, set()) == {"sub/long.py": MAX_LINES + 1}
    assert oversized(tmp_path, MAX_LINES, {"sub/long.py"}) == {}
