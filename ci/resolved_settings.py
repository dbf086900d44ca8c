"""Print every job the workflow would run, with its output and shell command, sorted, for diffing.

    python ci/resolved_settings.py > before.txt          # the standard cases (below)
    python ci/resolved_settings.py --configfile config/llp.yaml --target all

For each case it copies the repository's files (``git ls-files``: tracked and not ignored, the
working tree's version of each) into a temporary folder and runs ``snakemake -n -p --forceall <target>
[--configfile ...]`` there, so nothing is written to the repository and no existing result
changes the plan. Every job of the dry run is printed as one block: its rule, its outputs and its
shell command (the temporary folder replaced by ``<repo>``), the blocks sorted. Two outputs (before
and after a change to the settings code) diff to exactly the jobs whose settings changed.

Jobs behind a checkpoint (the manifest of an LLP data set) are not planned by a dry run and so
are not listed; the rule that builds the checkpoint is.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# (label, config files, target): the cases compared before and after a settings change.
CASES = [
    ("default: all", [], "all"),
    ("default: denoising table", [], "results/demo/tables/denoising.md"),
    ("default: methods table", [], "results/demo/tables/methods.md"),
    ("llp: all", ["config/llp.yaml"], "all"),
    ("llp_features: all", ["config/llp_features.yaml"], "all"),
    ("tiny_demo: all", ["tests/tiny_demo.yaml"], "all"),
]

_HEADER = re.compile(r"^(localrule|rule|checkpoint) (\S+):$")
_FIELD = re.compile(r"^    (\w+): (.*)$")


def copy_tree(dest: Path) -> None:
    """Copy the repository's files (tracked, and untracked but not ignored) into ``dest``."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, check=True, capture_output=True)
    for name in listed.stdout.decode().split("\0"):
        if not name:
            continue
        src = REPO / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), target)
        else:
            shutil.copy2(src, target)


def parse_dry_run(text: str, root: str) -> list[str]:
    """One text block per job (rule, outputs, wildcards, shell command) from ``snakemake -n -p``."""
    jobs, job, shell = [], None, False
    for line in text.replace(root, "<repo>").splitlines():
        header = _HEADER.match(line)
        if header:
            job = {"rule": header.group(2), "output": "", "wildcards": "", "shell": []}
            jobs.append(job)
            shell = False
        elif job is None:
            continue
        elif line.startswith("Shell command:"):
            job["shell"].append(line[len("Shell command:"):].strip())
            shell = True
        elif shell:
            if not line.strip():
                job, shell = None, False
            else:
                job["shell"].append(line.strip())
        else:
            field = _FIELD.match(line)
            if field and field.group(1) in ("output", "wildcards"):
                job[field.group(1)] = field.group(2)
    blocks = []
    for job in jobs:
        block = f"rule {job['rule']}\n  output: {job['output']}"
        if job["wildcards"]:
            block += f"\n  wildcards: {job['wildcards']}"
        if job["shell"]:
            block += "\n  shell: " + " ".join(job["shell"])
        blocks.append(block)
    return sorted(blocks)


def resolve(configfiles: list[str], target: str) -> list[str]:
    """The sorted job blocks of one dry run in a fresh copy of the repository."""
    with tempfile.TemporaryDirectory(prefix="avvp-resolved-") as tmp:
        copy_tree(Path(tmp))
        cmd = ["snakemake", "-n", "-p", "--forceall", "--cores", "1", target]
        if configfiles:
            cmd += ["--configfile", *configfiles]
        env = dict(os.environ, PYTHONPATH=tmp)
        done = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            return [f"ERROR (exit {done.returncode}):\n" + (done.stdout + done.stderr).replace(tmp, "<repo>")]
        return parse_dry_run(done.stdout + "\n" + done.stderr, tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", action="append", default=None,
                        help="a config file (repeatable); with --target: one case instead of the standard ones")
    parser.add_argument("--target", default=None, help="the target of the one case")
    args = parser.parse_args(argv)
    cases = CASES
    if args.target or args.configfile:
        cases = [("custom", args.configfile or [], args.target or "all")]
    for label, configfiles, target in cases:
        blocks = resolve(configfiles, target)
        print(f"=== {label} ({' '.join(configfiles) or 'config.yaml'}; target {target}): {len(blocks)} jobs")
        for block in blocks:
            print(block)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
