"""Benchmark: CPU time of the LLP protocol on the 1200 LLP test videos (random predictions).

Usage: ``python bench/evaluate.py [--annotations ../shared/llp] [--repeats 5]``. Prints the CPU
time (process time, median over repeats) of :func:`avvp.core.metrics.evaluate_arrays` (the per-epoch
model-selection call) and of :func:`avvp.stages.evaluate.evaluate_predictions` (with the input checks and
the dense truth built from the annotations).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from avvp.core.annotations import read_llp
from avvp.stages.evaluate import evaluate_predictions
from avvp.core.metrics import evaluate_arrays
from avvp.core.prediction_file import Predictions


def cpu_time(fn, repeats: int) -> float:
    """Median process CPU time of ``fn()`` over ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "llp"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", default=str(default), help="LLP annotation folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    ann = read_llp(args.annotations)
    ids = list(ann.split(args.split)["video_id"])
    n, c, t = len(ids), len(ann.classes), 10
    rng = np.random.default_rng(0)
    pred = Predictions(ids, ann.classes, *(rng.random((n, c), dtype=np.float32) for _ in range(3)),
                       rng.random((n, t, 2, c), dtype=np.float32))
    gt_audio, gt_visual = ann.dense("audio", ids, t), ann.dense("visual", ids, t)

    arrays = cpu_time(lambda: evaluate_arrays(pred.global_prob, pred.a_prob, pred.v_prob, pred.frame_prob,
                                              gt_audio, gt_visual, gate="han"), args.repeats)
    full = cpu_time(lambda: evaluate_predictions(pred, ann, args.split, gate="han"), args.repeats)
    print(f"{n} {args.split} videos, {c} classes, {t} segments; median of {args.repeats} runs (CPU time)")
    print(f"  evaluate_arrays (binarize + segment and event level): {arrays * 1000:.1f} ms")
    print(f"  evaluate_predictions (+ checks and dense truth):      {full * 1000:.1f} ms")


if __name__ == "__main__":
    main()
