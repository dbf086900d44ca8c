"""Benchmark: one training epoch of avvp's in-memory loop against an official-style .npy loader.

Both loops train the same HAN (official sizes) with the same losses, seed and sample order on
LLP-shaped random data (``--videos`` videos; audio (10, 128), frames (80, 2048), clips (10, 512)):

* **official-style**: a torch ``Dataset`` that reads three ``.npy`` files per video, a
  ``DataLoader`` with batch 16 and the model pooling the 80 frames after ``fc_v``, as the official
  code does;
* **avvp**: all features in memory as three tensors, frames pooled to 10 segments when loaded,
  batches taken by indexing, fused Adam (:func:`avvp.train.run_epoch` and
  :func:`avvp.train.make_optimizer`, what ``avvp train`` runs).

On a CPU the HAN layer, which both loops run on the same 10 segments, costs about as much as
``fc_v`` on 80 frames, so pre-pooling bounds the compute speed-up near 1.7x; the rest of the gain
is the per-sample file loading the official-style loop pays (much larger relative to a GPU's
compute). The two loops alternate every ``--chunk`` batches, so on a shared machine both see the
same load; wall and CPU seconds are summed per loop. Run: ``python bench/train.py --videos 2000``
(default 10000, about 7 GB of .npy files). Prints both epoch times, the speed-up, and each loop's
mean loss (they agree up to float rounding: both draw the same dropout masks).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from avvp.losses import training_loss
from avvp.model import HAN, OFFICIAL_DIMS
from avvp.seeding import epoch_order
from avvp.train import make_optimizer, run_epoch

FOLDERS = {"audio": ("vggish", (10, 128)), "frame": ("res152", (80, 2048)), "clip": ("r2plus1d_18", (10, 512))}
CONTRASTIVE = {"weight": 1.0, "tau": 0.2, "smoothing": 0.1}


def make_data(root: Path, n: int, n_classes: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Write one .npy per video and role (official layout) and return the ids and weak labels."""
    rng = np.random.default_rng(seed)
    ids = [f"v{i:010d}" for i in range(n)]
    for folder, _ in FOLDERS.values():
        (root / folder).mkdir(parents=True, exist_ok=True)
    for vid in tqdm(ids, desc="write .npy", unit="video"):
        for folder, shape in FOLDERS.values():
            np.save(root / folder / f"{vid}.npy", rng.standard_normal(shape, dtype=np.float32))
    labels = np.zeros((n, n_classes), dtype=np.float32)
    for i in range(n):
        labels[i, rng.choice(n_classes, size=rng.integers(1, 4), replace=False)] = 1.0
    return ids, labels


class NpyDataset(Dataset):
    """Official-style: three ``np.load`` per item."""

    def __init__(self, root: Path, ids: list[str], labels: np.ndarray):
        self.root, self.ids, self.labels = root, ids, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        vid = self.ids[i]
        item = {role: torch.from_numpy(np.load(self.root / folder / f"{vid}.npy"))
                for role, (folder, _) in FOLDERS.items()}
        item["label"] = torch.from_numpy(self.labels[i])
        return item


def fresh_model(seed: int, n_classes: int, official: bool) -> tuple[HAN, torch.optim.Optimizer]:
    """The model, and the official optimizer (plain Adam) or avvp's (:func:`avvp.train.make_optimizer`)."""
    torch.manual_seed(seed)
    model = HAN(**OFFICIAL_DIMS, n_classes=n_classes)
    if official:
        return model, torch.optim.Adam(model.parameters(), lr=3e-4)
    return model, make_optimizer(model, 3e-4)


def load_in_memory(root: Path, ids: list[str]) -> tuple[torch.Tensor, ...]:
    """All features as three tensors, frames pooled 80 → 10 (what avvp.data does from the stores)."""
    out = []
    for role, (folder, shape) in FOLDERS.items():
        rows = shape[0] if role != "frame" else 10
        x = torch.empty((len(ids), rows, shape[1]), dtype=torch.float32)
        for i, vid in enumerate(tqdm(ids, desc=f"load {folder}", unit="video", leave=False)):
            a = torch.from_numpy(np.load(root / folder / f"{vid}.npy"))
            x[i] = a.reshape(10, 8, shape[1]).mean(dim=1) if role == "frame" else a
        out.append(x)
    return tuple(out)


class Timer:
    """Wall and CPU seconds spent inside ``with timer:`` blocks, summed."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self._w, self._c = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c


def interleaved_epoch(root: Path, ids: list[str], labels: np.ndarray, features: tuple[torch.Tensor, ...],
                      order: torch.Tensor, args) -> dict[str, float]:
    """One epoch of each loop, alternating every ``args.chunk`` batches so both see the same load.

    Each loop keeps its own torch random stream (restored around its turns), so both draw the same
    dropout masks and reach the same losses up to float rounding.
    """
    contrastive = CONTRASTIVE if args.contrastive else None
    off_model, off_opt = fresh_model(args.seed, labels.shape[1], official=True)
    our_model, our_opt = fresh_model(args.seed, labels.shape[1], official=False)
    loader = DataLoader(NpyDataset(root, ids, labels), batch_size=args.batch_size, sampler=order.tolist(),
                        num_workers=args.workers)
    y = torch.from_numpy(labels)
    targets = (y, y, y, 0.9 * y + 0.05)
    t_off, t_our = Timer(), Timer()
    with t_off:
        batches = iter(loader)
    torch.manual_seed(args.seed + 1)
    rng_off = rng_our = torch.get_rng_state()
    loss_off = loss_our = 0.0
    n, step = len(ids), args.chunk * args.batch_size
    off_model.train()
    for begin in tqdm(range(0, n, step), desc=f"both loops, {args.chunk} batches each in turn", unit="turn"):
        torch.set_rng_state(rng_off)
        with t_off:
            for _ in range(args.chunk):
                batch = next(batches, None)
                if batch is None:
                    break
                out = off_model(batch["audio"], batch["frame"], batch["clip"])
                terms = training_loss(out, batch["label"], contrastive=contrastive)
                off_opt.zero_grad(set_to_none=True)
                terms.total.backward()
                off_opt.step()
                loss_off += terms.total.item() * len(batch["label"])
        rng_off = torch.get_rng_state()
        torch.set_rng_state(rng_our)
        part = order[begin:begin + step]
        with t_our:
            sums = run_epoch(our_model, our_opt, features, targets, part, args.batch_size, contrastive)
        loss_our += sums["loss"] * len(part)
        rng_our = torch.get_rng_state()
    return {"official_wall": t_off.wall, "official_cpu": t_off.cpu, "avvp_wall": t_our.wall,
            "avvp_cpu": t_our.cpu, "official_loss": loss_off / n, "avvp_loss": loss_our / n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=10000, help="number of videos (default 10000 = LLP train)")
    p.add_argument("--classes", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the official-style loop")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    p.add_argument("--contrastive", action="store_true", help="add MA's contrastive loss to both loops")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=5, help="batches per turn when alternating the two loops")
    p.add_argument("--dir", default=None, help="where to write the .npy files (default: a temporary folder)")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        ids, labels = make_data(root, args.videos, args.classes, args.seed)
        order = epoch_order(args.seed, 0, len(ids))
        tic = time.perf_counter()
        features = load_in_memory(root, ids)
        t_load = time.perf_counter() - tic
        r = interleaved_epoch(root, ids, labels, features, order, args)

    print(f"\n{args.videos} videos, batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"{args.workers} loader workers, contrastive {'on' if args.contrastive else 'off'}, "
          f"loops alternating every {args.chunk} batches")
    print(f"official-style (.npy per sample + DataLoader): {r['official_wall']:8.2f} s/epoch wall "
          f"({r['official_cpu']:.2f} s CPU)  mean loss {r['official_loss']:.6f}")
    print(f"avvp in-memory (pooled frames, indexed batches): {r['avvp_wall']:6.2f} s/epoch wall "
          f"({r['avvp_cpu']:.2f} s CPU)  mean loss {r['avvp_loss']:.6f}")
    print(f"one-off load into memory (from the .npy files): {t_load:.2f} s")
    print(f"speed-up: {r['official_wall'] / r['avvp_wall']:.2f}x wall, "
          f"{r['official_cpu'] / r['avvp_cpu']:.2f}x CPU; "
          f"loss difference {abs(r['official_loss'] - r['avvp_loss']):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
