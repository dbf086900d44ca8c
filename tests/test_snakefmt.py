"""The workflow is formatted with Snakemake's formatter (`snakefmt`, pinned in envs/pinned.txt)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_workflow_is_snakefmt_formatted():
    snakefmt = shutil.which("snakefmt")
    assert snakefmt, "snakefmt is not installed: pip install -r envs/requirements.txt"
    proc = subprocess.run([snakefmt, "--check", "--diff", "Snakefile", "workflow"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (
        "the workflow is not formatted; run `snakefmt Snakefile workflow` to fix it:\n"
        + proc.stdout[-4000:] + proc.stderr[-2000:])
