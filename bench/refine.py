"""Benchmark: the refinement passes of ``avvp refine`` against one training epoch.

On LLP-shaped random data (``--videos`` videos, 25 classes; audio (10, 128), frames pooled to
(10, 2048), clips (10, 512); official HAN sizes), it times

* **refine**: :func:`avvp.stages.refine.exchange.choose_partners` plus
  :func:`avvp.stages.refine.exchange.exchange_probs` (the original, visual-swapped and audio-swapped
  passes, batched, in inference mode, from in-memory features) with ``--partners`` K partners;
* **epoch**: one training epoch of :func:`avvp.stages.train.run_epoch` (batch 16, contrastive loss on),
  what ``avvp train`` runs per epoch (validation not included).

The two alternate ``--repeats`` times so both see the same machine load; the medians are printed.
Run: ``python bench/refine.py --videos 1000``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--partners", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=256, help="refine batch size")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from avvp.core.model import HAN
    from avvp.stages.refine.exchange import choose_partners, exchange_probs
    from avvp.stages.train import make_optimizer, run_epoch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n, c = args.videos, 25
    labels = np.zeros((n, c), dtype=np.float32)
    for i in range(n):
        labels[i, rng.choice(c, size=rng.integers(1, 4), replace=False)] = 1
    audio = torch.randn(n, 10, 128)
    frame = torch.randn(n, 10, 2048)
    clip = torch.randn(n, 10, 512)
    model = HAN(n_classes=c)
    optimizer = make_optimizer(model, 3e-4)
    y = torch.from_numpy(labels)
    targets = (y, y, y, 0.9 * y + 0.05)
    contrastive = {"weight": 1.0, "tau": 0.2, "smoothing": 0.1}

    refine_s, epoch_s = [], []
    for _ in range(args.repeats):
        tic = time.perf_counter()
        partners = choose_partners(labels, args.partners, [2, 1])
        exchange_probs(model, audio, frame, clip, partners, args.batch_size, "cpu", progress=False)
        refine_s.append(time.perf_counter() - tic)
        tic = time.perf_counter()
        run_epoch(model, optimizer, (audio, frame, clip), targets, torch.randperm(n), 16, contrastive)
        epoch_s.append(time.perf_counter() - tic)
    r, e = statistics.median(refine_s), statistics.median(epoch_s)
    print(f"{n} videos, K = {args.partners}, {args.threads} threads: refine passes {r:.2f} s, "
          f"one training epoch {e:.2f} s (refine / epoch = {r / e:.2f})")


if __name__ == "__main__":
    main()
