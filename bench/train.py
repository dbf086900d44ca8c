"""Benchmark: one training epoch, with its validation, of avvp's loop against an official-style loop.

All loops train the same HAN (official sizes) with the same losses, seed, sample order and dropout
masks on LLP-shaped random data: ``--videos`` training videos and ``--val-videos`` validation
videos (audio (10, 128), frames (80, 2048), clips (10, 512); random dense truth for validation).
An epoch is what the official code runs per epoch: a pass over the training set, then the
validation set scored with the LLP metrics (the HAN recipe selects its model on them).

* **official-style**: a torch ``Dataset`` that looks up the video's row of the split table,
  parses its labels and reads three ``.npy`` files per video, a
  ``DataLoader`` with batch 16, the model pooling the 80 frames after ``fc_v``, plain Adam; then
  validation with batch 1 in file order, each video's truth taken from the dense annotation table
  by its file name, and each video scored by a per-video loop (:mod:`avvp.core.metrics_reference`).
* **avvp fp32**: all features in memory as three tensors, frames pooled to 10 segments when
  loaded, batches taken by indexing, fused Adam (:func:`avvp.stages.train.run_epoch`), then batched
  validation with the vectorised metrics (:func:`avvp.stages.train.validate`): what ``avvp train`` runs.
* **avvp bf16**: the same with ``train.precision: bf16`` (bfloat16 autocast; not the official
  arithmetic, so its losses differ from the others at about 1e-3).

On a CPU the official-style loop does only about 1.7x the arithmetic of avvp's fp32 loop (the HAN
layer, which both run on the same 10 segments, costs about as much as ``fc_v`` on 80 frames), and
both run their matrix products near the CPU's peak, so fp32 cannot go much beyond ~1.7x there;
the rest comes from loading and validation. The loops take turns every ``--chunk`` batches so that
on a shared machine all see the same load; wall and CPU seconds are summed per loop.

Run: ``python bench/train.py --videos 2000`` (default 10000, about 7 GB of .npy files; ``--dir``
puts them elsewhere than the temporary folder; ``--device cuda`` runs every loop on a GPU, the
official-style loop moving each batch there as the official code does). Prints each loop's epoch time (training +
validation), the speed-ups, each loop's mean loss and validation score.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from avvp.core.data import Features, SplitData
from avvp.core.losses import training_loss, visual_smoothing
from avvp.core.metrics import METRICS
from avvp.core.metrics_reference import mean_scores, video_scores
from avvp.core.model import HAN, OFFICIAL_DIMS
from avvp.infra.seeding import epoch_order
from avvp import settings
from avvp.stages.train import make_optimizer, run_epoch, validate

FOLDERS = {"audio": ("vggish", (10, 128)), "frame": ("res152", (80, 2048)), "clip": ("r2plus1d_18", (10, 512))}
T = 10
CONTRASTIVE = {"weight": 1.0, "tau": 0.2, "smoothing": 0.1}
VAL_SETTINGS = {**settings.default("train"), "gate": "han"}   # HAN's model selection: global-probability gate


# ------------------------------------------------------------------------------------ data

def write_npy(root: Path, ids: list[str], rng: np.random.Generator, desc: str) -> None:
    """One .npy per video and role, in the official folder layout."""
    for folder, _ in FOLDERS.values():
        (root / folder).mkdir(parents=True, exist_ok=True)
    for vid in tqdm(ids, desc=desc, unit="video"):
        for folder, shape in FOLDERS.values():
            np.save(root / folder / f"{vid}.npy", rng.standard_normal(shape, dtype=np.float32))


def weak_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """1-3 random classes per video."""
    labels = np.zeros((n, n_classes), dtype=np.float32)
    for i in range(n):
        labels[i, rng.choice(n_classes, size=rng.integers(1, 4), replace=False)] = 1.0
    return labels


def dense_truth(ids: list[str], labels: np.ndarray, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Random dense events of the labelled classes, as the official annotation tables
    (filename, onset, offset, event_labels as a class index), one per modality."""
    rows: dict[str, list] = {"audio": [], "visual": []}
    for vid, row in zip(ids, labels):
        for c in np.flatnonzero(row):
            for modality in rows:
                if rng.random() < 0.75:
                    onset = int(rng.integers(0, T))
                    rows[modality].append((vid, onset, int(rng.integers(onset + 1, T + 1)), int(c)))
    return {m: pd.DataFrame(r, columns=["filename", "onset", "offset", "event_labels"]) for m, r in rows.items()}


def truth_matrix(table: pd.DataFrame, n_classes: int) -> np.ndarray:
    """(C, T) truth of one video from its rows of a dense table."""
    gt = np.zeros((n_classes, T), dtype=np.uint8)
    for onset, offset, c in zip(table["onset"], table["offset"], table["event_labels"]):
        gt[c, onset:offset] = 1
    return gt


def load_in_memory(root: Path, ids: list[str]) -> tuple[torch.Tensor, ...]:
    """All features as three tensors, frames pooled 80 → 10 (what avvp.core.data does from the stores)."""
    out = []
    for role, (folder, shape) in FOLDERS.items():
        x = torch.empty((len(ids), T, shape[1]), dtype=torch.float32)
        for i, vid in enumerate(tqdm(ids, desc=f"load {folder}", unit="video", leave=False)):
            a = torch.from_numpy(np.load(root / folder / f"{vid}.npy"))
            x[i] = a.reshape(T, -1, shape[1]).mean(dim=1) if role == "frame" else a
        out.append(x)
    return tuple(out)


class NpyDataset(Dataset):
    """Official-style: the item's row of the split table (file name, comma-separated class names),
    three ``np.load``, and the label vector built from the names."""

    def __init__(self, root: Path, ids: list[str], labels: np.ndarray):
        self.root, self.n_classes = root, labels.shape[1]
        names = [",".join(f"c{c}" for c in np.flatnonzero(row)) for row in labels]
        self.table = pd.DataFrame({"filename": ids, "event_labels": names})

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict:
        row = self.table.loc[i, :]
        vid = row["filename"]
        item = {role: torch.from_numpy(np.load(self.root / folder / f"{vid}.npy"))
                for role, (folder, _) in FOLDERS.items()}
        label = np.zeros(self.n_classes, dtype=np.float32)
        for name in row["event_labels"].split(","):
            label[int(name[1:])] = 1.0
        item["label"] = torch.from_numpy(label)
        return item


# ----------------------------------------------------------------------------------- loops

class Timer:
    """Wall and CPU seconds spent inside ``with timer:`` blocks, summed (CUDA work included: the
    device is synchronised at both ends)."""

    def __init__(self, device: torch.device):
        self.wall = self.cpu = 0.0
        self.cuda = device.type == "cuda"

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def __enter__(self):
        self._sync()
        self._w, self._c = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        self._sync()
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c


class Loop:
    """One training loop: its model, optimizer, torch random streams, timers and loss sum."""

    def __init__(self, name: str, seed: int, n_classes: int, official: bool, device: torch.device):
        self.name, self.device = name, device
        torch.manual_seed(seed)
        self.model = HAN(**OFFICIAL_DIMS, n_classes=n_classes).to(device)
        params = self.model.parameters()
        self.optimizer = torch.optim.Adam(params, lr=3e-4) if official else make_optimizer(self.model, 3e-4)
        torch.manual_seed(seed + 1)
        self.rng = self._rng_state()
        self.train_time, self.val_time = Timer(device), Timer(device)
        self.loss_sum, self.val = 0.0, {}

    def _rng_state(self) -> tuple:
        return torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None

    def _set_rng_state(self, state: tuple) -> None:
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], self.device)

    def turn(self, begin: int, step: int) -> None:
        """Train on samples ``order[begin:begin + step]`` with this loop's random streams."""
        self._set_rng_state(self.rng)
        with self.train_time:
            self.loss_sum += self._train(begin, step)
        self.rng = self._rng_state()

    def validate(self) -> None:
        with self.val_time:
            self.val = self._validate()

    def epoch_time(self, attr: str) -> float:
        return getattr(self.train_time, attr) + getattr(self.val_time, attr)


class OfficialLoop(Loop):
    """.npy files per sample through a DataLoader; batch-1 validation scored per video."""

    def __init__(self, args, data: dict):
        super().__init__("official-style", args.seed, args.classes, official=True, device=data["device"])
        self.args, self.data = args, data
        self.contrastive = CONTRASTIVE if args.contrastive else None
        with self.train_time:
            loader = DataLoader(NpyDataset(data["root"], data["train_ids"], data["train_labels"]),
                                batch_size=args.batch_size, sampler=data["order"].tolist(),
                                num_workers=args.workers)
            self.batches = iter(loader)

    def _train(self, begin: int, step: int) -> float:
        self.model.train()
        total = 0.0
        for _ in range(0, step, self.args.batch_size):
            batch = next(self.batches, None)
            if batch is None:
                break
            batch = {k: v.to(self.device) for k, v in batch.items()}
            out = self.model(batch["audio"], batch["frame"], batch["clip"])
            terms = training_loss(out, batch["label"], contrastive=self.contrastive)
            self.optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            self.optimizer.step()
            total += terms.total.item() * len(batch["label"])
        return total

    def _validate(self) -> dict[str, float]:
        d = self.data
        loader = DataLoader(NpyDataset(d["root"], d["val_ids"], d["val_labels"]), batch_size=1,
                            num_workers=self.args.workers)
        self.model.eval()
        scores = []
        with torch.no_grad():
            for vid, batch in zip(d["val_ids"], loader):
                out = self.model(*(batch[r].to(self.device) for r in FOLDERS))
                gate = (out.global_prob[0] >= 0.5).cpu().numpy()[:, None]
                frame = (out.frame_prob[0] >= 0.5).cpu().numpy()          # (T, 2, C)
                pred_a, pred_v = frame[:, 0].T * gate, frame[:, 1].T * gate
                gt_a, gt_v = (truth_matrix(table[table["filename"] == vid], self.args.classes)
                              for table in (d["dense"]["audio"], d["dense"]["visual"]))
                scores.append(video_scores(pred_a, pred_v, gt_a, gt_v))
        return mean_scores(scores)


class AvvpLoop(Loop):
    """avvp's in-memory loop (:func:`avvp.stages.train.run_epoch`) and validation (:func:`avvp.stages.train.validate`)."""

    def __init__(self, args, data: dict, precision: str):
        super().__init__(f"avvp {precision}", args.seed, args.classes, official=False, device=data["device"])
        self.args, self.data, self.precision = args, data, precision
        self.contrastive = CONTRASTIVE if args.contrastive else None
        y = torch.from_numpy(data["train_labels"]).to(self.device)
        self.targets = (y, y, y, visual_smoothing(y))

    def _train(self, begin: int, step: int) -> float:
        part = self.data["order"][begin:begin + step]
        sums = run_epoch(self.model, self.optimizer, self.data["train_features"], self.targets, part,
                         self.args.batch_size, self.contrastive, precision=self.precision)
        return sums["loss"] * len(part)

    def _validate(self) -> dict[str, float]:
        row = validate(self.model, self.data["val_split"], VAL_SETTINGS, self.device)
        return {m: row[f"val_{m}"] for m in METRICS}


# ------------------------------------------------------------------------------------ main

def prepare(root: Path, args, device: torch.device) -> dict:
    """Write the .npy files, load avvp's in-memory copy (on ``device``), build the validation truth."""
    rng = np.random.default_rng(args.seed)
    train_ids = [f"t{i:010d}" for i in range(args.videos)]
    val_ids = [f"v{i:010d}" for i in range(args.val_videos)]
    write_npy(root, train_ids + val_ids, rng, "write .npy")
    train_labels, val_labels = weak_labels(args.videos, args.classes, rng), weak_labels(args.val_videos, args.classes, rng)
    dense = dense_truth(val_ids, val_labels, rng)
    tic = time.perf_counter()
    train_features = tuple(x.to(device) for x in load_in_memory(root, train_ids))
    val_features = Features(val_ids, *load_in_memory(root, val_ids), attrs={})
    load_seconds = time.perf_counter() - tic
    gt = {m: np.stack([truth_matrix(t[t["filename"] == v], args.classes) for v in val_ids])
          for m, t in dense.items()}
    return {"root": root, "train_ids": train_ids, "train_labels": train_labels, "val_ids": val_ids,
            "val_labels": val_labels, "dense": dense, "train_features": train_features,
            "val_split": SplitData(val_features, val_labels, gt["audio"], gt["visual"]),
            "order": epoch_order(args.seed, 0, args.videos), "load_seconds": load_seconds, "device": device}


def run_loops(loops: list[Loop], args) -> None:
    """One epoch of every loop, taking turns every ``args.chunk`` batches, then each validation."""
    step = args.chunk * args.batch_size
    for begin in tqdm(range(0, args.videos, step), desc=f"{len(loops)} loops, {args.chunk} batches each in turn",
                      unit="turn"):
        for loop in loops:
            loop.turn(begin, step)
    for loop in tqdm(loops, desc="validation", unit="loop"):
        loop.validate()


def report(loops: list[Loop], args, load_seconds: float) -> None:
    official, ours = loops[0], loops[1:]
    print(f"\n{args.videos} training + {args.val_videos} validation videos, batch {args.batch_size}, "
          f"device {args.device}, {torch.get_num_threads()} threads, {args.workers} loader workers, "
          f"contrastive {'on' if args.contrastive else 'off'}, loops taking turns every {args.chunk} batches")
    for loop in loops:
        print(f"{loop.name:>15}: {loop.epoch_time('wall'):8.2f} s/epoch wall = train {loop.train_time.wall:7.2f}"
              f" + validation {loop.val_time.wall:6.2f} ({loop.epoch_time('cpu'):.2f} s CPU); "
              f"mean loss {loop.loss_sum / args.videos:.6f}; val segment Type@AV "
              f"{100 * loop.val['segment_type']:.3f}, event Type@AV {100 * loop.val['event_type']:.3f}")
    print(f"one-off load into memory (from the .npy files, avvp loops): {load_seconds:.2f} s")
    for loop in ours:
        loss_diff = abs(official.loss_sum - loop.loss_sum) / args.videos
        print(f"speed-up of {loop.name}: {official.epoch_time('wall') / loop.epoch_time('wall'):.2f}x per epoch "
              f"({official.epoch_time('cpu') / loop.epoch_time('cpu'):.2f}x CPU), "
              f"{official.train_time.wall / loop.train_time.wall:.2f}x training only, "
              f"{official.val_time.wall / loop.val_time.wall:.1f}x validation only; "
              f"loss difference {loss_diff:.2e}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=10000, help="training videos (default 10000 = LLP train)")
    p.add_argument("--val-videos", type=int, default=649, help="validation videos (default 649 = LLP val)")
    p.add_argument("--classes", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the official-style loop")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:<index>")
    p.add_argument("--precision", default="fp32,bf16",
                   help="avvp loops to run, comma-separated: fp32, bf16 (default: both)")
    p.add_argument("--contrastive", action="store_true", help="add MA's contrastive loss to every loop")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=5, help="batches per turn when the loops take turns")
    p.add_argument("--dir", default=None, help="where to write the .npy files (default: a temporary folder)")
    args = p.parse_args(argv)
    precisions = [x.strip() for x in args.precision.split(",") if x.strip()]
    if not precisions or set(precisions) - {"fp32", "bf16"}:
        p.error(f"--precision {args.precision!r}: give fp32, bf16 or both")
    torch.set_num_threads(max(1, args.threads))
    device = torch.device(args.device)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        p.error(f"--device {args.device}: no usable CUDA device")

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        data = prepare(Path(tmp), args, device)
        loops: list[Loop] = [OfficialLoop(args, data)]
        loops += [AvvpLoop(args, data, precision) for precision in precisions]
        run_loops(loops, args)
    report(loops, args, data["load_seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
