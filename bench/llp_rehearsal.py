"""Rehearsal: the whole LLP workflow at full size on a stand-in feature release, measured.

1. ``avvp rehearsal release`` writes stand-in features in the official release layout for every
   video of the LLP annotation files (``--annotations``), into ``<out>/release``;
2. ``config/llp_features.yaml`` runs on it through Snakemake, overridden only in its data and in
   the length of training (``--epochs`` per run, the HAN recipe shortened in proportion;
   :func:`avvp.stages.rehearsal.workflow_config`), into ``<out>/results/llp_rehearsal``;
3. the report (printed and written to ``<out>/report.md``): per stage the jobs, their wall time
   (Snakemake's ``benchmark:`` files), the peak memory of the job (the kernel's high-water mark that
   every ``avvp`` command logs at exit, and Snakemake's sampled ``max_rss`` of the job's process
   tree), the disk used; the projection of training to the full recipes (12 and 40 epochs); the
   scores of every variant against all-zero predictions; refinement against the stand-in truth.

Run: ``python bench/llp_rehearsal.py --out results/rehearsal`` (about 8 GB for the release and
10 GB of results; an hour or more on 2 cores). ``--videos N`` rehearses on a subset;
``--report-only`` only writes the report of an earlier run.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
DATASET = "llp_rehearsal"
#: Stages of the report, in DAG order: rule -> what it does.
STAGES = {
    "manifest": "read the annotations",
    "import_features": "import the release (3 stores)",
    "pool_frames": "pool frames 80 -> 10 rows, once",
    "train": "train (every variant and seed)",
    "refine": "refine labels",
    "predict": "predict the test split",
    "evaluate": "evaluate (1,200 test videos)",
    "table": "Tables 1 and 2",
}
#: Outputs of each stage, for the disk column.
STAGE_OUTPUTS = {"import_features": ["features/audio.h5", "features/frame.h5", "features/clip.h5",
                                     "features/failures"],
                 "pool_frames": ["features/frame_pooled.h5"], "train": ["models"], "refine": ["refine"],
                 "predict": ["predictions"], "evaluate": ["eval"], "table": ["tables"],
                 "manifest": ["manifest.parquet", "dense_audio.parquet", "dense_visual.parquet",
                              "dense_train_audio.parquet", "dense_train_visual.parquet"]}
LOG_LINE = re.compile(r"avvp [\w-]+: (?P<wall>[\d.]+) s wall, (?P<cpu>[\d.]+) s CPU, "
                      r"peak memory (?P<mb>[\d.]+) MB")
#: Segment-level F1 of all-zero predictions on the real LLP test annotations (official scoring).
ALL_ZEROS = {"audio": 0.0050, "visual": 0.1008, "av": 0.1450}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--annotations", default=str(REPO.parent / "shared" / "llp"),
                    help="folder of the six LLP annotation CSVs (default: ../shared/llp)")
    ap.add_argument("--out", default="results/rehearsal", help="release, results and report go here")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per training run (default 2)")
    ap.add_argument("--videos", type=int, default=None, help="a subset of this many videos")
    ap.add_argument("--seed", type=int, default=0, help="the stand-in release's seed")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--report-only", action="store_true", help="only write the report of an earlier run")
    ap.add_argument("--results", default=None, help="with --report-only: the data set's results folder")
    ap.add_argument("--release", default=None, help="with --report-only: the release folder")
    ap.add_argument("--report", default=None, help="the report file (default: <out>/report.md)")
    args = ap.parse_args()

    out = Path(args.out).resolve()
    release = Path(args.release).resolve() if args.release else out / "release"
    results = Path(args.results).resolve() if args.results else out / "results" / DATASET
    dag_seconds = None
    if not args.report_only:
        out.mkdir(parents=True, exist_ok=True)
        release_step(args, release, out)
        config = write_config(args, release, out)
        dag_seconds = run_dag(config, args.cores, out)
    text = report(results, release, dag_seconds, args.epochs)
    print(text)
    path = Path(args.report) if args.report else out / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ------------------------------------------------------------------------------- the run

def _run(cmd: list[str], log: Path) -> float:
    """Run ``cmd`` with its output in ``log``; its wall time (raises on failure)."""
    tic = time.perf_counter()
    with open(log, "w") as fh:
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)
    if done.returncode:
        sys.exit(f"{' '.join(cmd[:3])} ... failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - tic


def release_step(args, release: Path, out: Path) -> None:
    cmd = ["avvp", "rehearsal", "release", "--annotations", args.annotations, "--out", str(release),
           "--seed", str(args.seed), "--no-progress"]
    if args.videos:
        cmd += ["--videos", str(args.videos)]
    seconds = _run(cmd, out / "release.log")
    print(f"stand-in release: {seconds:.0f} s -> {release}", flush=True)


def write_config(args, release: Path, out: Path) -> Path:
    """``config/llp_features.yaml`` with the rehearsal's overrides, as one file."""
    from avvp.stages.rehearsal import workflow_config
    from avvp.settings import merge_settings

    base = yaml.safe_load((REPO / "config" / "llp_features.yaml").read_text())
    overrides = workflow_config(release, out / "results", DATASET, args.epochs)
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(merge_settings(base, overrides, strict=False), sort_keys=False))
    return path


def run_dag(config: Path, cores: int, out: Path) -> float:
    cmd = ["snakemake", "--configfile", str(config), "--cores", str(cores)]
    print(f"running: {' '.join(cmd)} (log: {out / 'snakemake.log'})", flush=True)
    seconds = _run(cmd, out / "snakemake.log")
    print(f"whole DAG: {seconds / 60:.1f} min", flush=True)
    return seconds


# ------------------------------------------------------------------------------ the report

def du(paths: list[Path]) -> int:
    """Bytes used by files and folders."""
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total


def jobs(results: Path) -> pd.DataFrame:
    """One row per job: rule, name, wall s and sampled max RSS (benchmark files), peak MB and
    CPU s (the avvp log line)."""
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rel = tsv.relative_to(results / "benchmarks").with_suffix("")
        rule = rel.parts[0]
        bench = pd.read_csv(tsv, sep="\t").iloc[-1]
        log = results / "logs" / _log_name(rel)
        match = LOG_LINE.search(log.read_text()) if log.exists() else None
        rows.append({"rule": rule, "job": str(rel), "wall_s": float(bench["s"]),
                     "max_rss_mb": _number(bench.get("max_rss")),
                     "peak_mb": float(match["mb"]) if match else np.nan,
                     "cpu_s": float(match["cpu"]) if match else _number(bench.get("cpu_time"))})
    return pd.DataFrame(rows)


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _log_name(rel: Path) -> Path:
    """The log of a job from its benchmark name (benchmarks/<rule>/... -> logs/...)."""
    rule, rest = rel.parts[0], Path(*rel.parts[1:]) if len(rel.parts) > 1 else None
    special = {"import_features": "features/import", "pool_frames": "features/pool_frames",
               "manifest": "manifest"}
    if rule in special:
        return Path(special[rule] + ".log")
    folder = {"table": "tables"}.get(rule, rule)
    return Path(folder) / rest.with_suffix(".log")


def epoch_seconds(results: Path) -> pd.DataFrame:
    """Per training run: variant, epochs, median seconds per epoch (history.parquet)."""
    rows = []
    for hist in sorted((results / "models").glob("*/seed*/history.parquet")):
        h = pd.read_parquet(hist)
        rows.append({"variant": hist.parent.parent.name, "seed": hist.parent.name,
                     "epochs": len(h), "epoch_s": float(h["seconds"].median())})
    return pd.DataFrame(rows)


def report(results: Path, release: Path, dag_seconds: float | None, epochs: int) -> str:
    table = jobs(results)
    lines = ["# LLP rehearsal at full size", ""]
    if dag_seconds is not None:
        lines.append(f"Whole DAG: {dag_seconds / 60:.1f} min wall.")
    lines += [f"Stand-in release: {du([release / 'feats']) / 1e9:.2f} GB ({release}).", "",
              "| stage | jobs | wall (sum) | longest job | peak memory of a job (exact) | sampled max RSS | disk |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for rule, what in STAGES.items():
        part = table[table["rule"] == rule]
        if part.empty:
            continue
        disk = du([results / p for p in STAGE_OUTPUTS.get(rule, [])])
        lines.append(f"| {rule}: {what} | {len(part)} | {_duration(part['wall_s'].sum())} | "
                     f"{_duration(part['wall_s'].max())} | {part['peak_mb'].max():.0f} MB | "
                     f"{part['max_rss_mb'].max():.0f} MB | {disk / 1e9:.2f} GB |")
    lines += ["", f"Results folder in all: {du([results]) / 1e9:.2f} GB."]
    imported = table[table["rule"] == "import_features"]
    if len(imported):
        size, wall = du([release / "feats"]), float(imported["wall_s"].iloc[0])
        lines.append(f"The import reads {size / 1e9:.2f} GB of .npy files and writes as much in "
                     f"{wall:.0f} s: {size / wall / 1e6:.0f} MB/s each way.")
    lines.append("")
    lines += projection(results, table, epochs)
    lines += scores(results) + refinement(results)
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def projection(results: Path, table: pd.DataFrame, epochs: int) -> list[str]:
    """Training time of the full recipes on this machine, from the measured epochs."""
    ep = epoch_seconds(results)
    if ep.empty:
        return []
    train = table[table["rule"] == "train"].copy()
    train["variant"] = train["job"].str.split("/").str[1]
    runs = train.merge(ep.assign(job=lambda d: "train/" + d["variant"] + "/" + d["seed"]), on=["job", "variant"])
    runs["fixed_s"] = runs["wall_s"] - runs["epochs"] * runs["epoch_s"]
    full = np.where(runs["variant"] == "han", 40, 12)
    runs["full_s"] = runs["fixed_s"] + full * runs["epoch_s"]
    runs["full_cpu_s"] = runs["full_s"] * runs["cpu_s"] / runs["wall_s"]   # the job's CPU share kept
    c = runs[runs["variant"].isin(["baseline_c", "ma"])]["epoch_s"].median()
    p = runs[~runs["variant"].isin(["baseline_c", "ma"])]["epoch_s"].median()
    return ["## Training: measured and projected to the full recipes", "",
            f"Measured: {len(runs)} runs of {epochs} epochs (han: {int(runs[runs['variant'] == 'han']['epochs'].max())}), "
            f"{_duration(runs['wall_s'].sum())} in all; an epoch (training + validation) takes "
            f"{p:.0f} s without and {c:.0f} s with the contrastive loss (median); the rest of a job "
            f"(loading, checkpoints, writing) {runs['fixed_s'].median():.0f} s.",
            f"Projected with 12 epochs per run and 40 for han: {runs['full_s'].sum() / 3600:.1f} h of "
            f"training jobs as measured here (wall, summed over jobs), {runs['full_cpu_s'].sum() / 3600:.1f} h "
            f"of CPU, so about {runs['full_cpu_s'].sum() / 3600 / 2:.1f} h on 2 otherwise idle cores "
            "(two jobs side by side, one thread each).", ""]


def scores(results: Path) -> list[str]:
    lines = ["## Every variant against all-zero predictions (segment-level F1, test)", "",
             "| variant | seed | audio | visual | audio-visual | Type@AV |", "|---|---|---:|---:|---:|---:|",
             f"| all zeros | – | {100 * ALL_ZEROS['audio']:.2f} | {100 * ALL_ZEROS['visual']:.2f} | "
             f"{100 * ALL_ZEROS['av']:.2f} | – |"]
    for path in sorted((results / "eval").glob("*/seed*/test/metrics.json")):
        o = json.loads(path.read_text())["overall"]
        typ = (o["segment_audio"] + o["segment_visual"] + o["segment_av"]) / 3
        lines.append(f"| {path.parts[-4]} | {path.parts[-3]} | {100 * o['segment_audio']:.1f} | "
                     f"{100 * o['segment_visual']:.1f} | {100 * o['segment_av']:.1f} | {100 * typ:.1f} |")
    return lines + [""]


def refinement(results: Path) -> list[str]:
    lines = ["## Refinement against the stand-in training truth", "",
             "| refined labels | seed | modality | labels | truly absent | dropped | precision | recall |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for path in sorted((results / "refine").glob("*/seed*/quality.parquet")):
        q = pd.read_parquet(path)
        for r in q[q["class"] == "all"].itertuples():
            lines.append(f"| {path.parts[-3]} | {path.parts[-2]} | {r.modality} | {r.labels} | {r.absent} | "
                         f"{r.dropped} | {100 * r.precision:.1f} | {100 * r.recall:.1f} |")
    return lines + [""]


if __name__ == "__main__":
    if shutil.which("avvp") is None:
        sys.exit("avvp is not on PATH (pip install -r envs/requirements.txt)")
    main()
