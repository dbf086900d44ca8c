"""VALOR's teachers beside ResNet-152 (``python bench/extract.py --teachers``).

Each of ``frame`` (the official ResNet-152 at 256 → 224, 80 frames per 10-s clip, avvp's JIT
engine), ``clip_image`` (CLIP ViT-L/14, 10 frames at 224²) and ``clap_audio`` (CLAP HTS-AT fusion,
10 one-second inputs + the whole clip, each a 10-s model input) runs as one whole
``avvp extract --role <role>`` process over the same clips, in each precision (``bf16``: the
role's ``precision`` setting, autocast), with random weights of the real size (nothing is
downloaded). The runs take turns (round k runs every role × precision, the order reversed every
other round), so that they share whatever else loads the machine; each round also measures the
machine's matrix-product rate (:func:`extract.matmul_rate`) in each precision, the best of which is
the limit reported against.

Printed: one line per run, then a table per role and precision: wall seconds per clip (whole
process: start-up, model construction and the class prompts included), the forward passes' seconds
per clip, the ratio to ResNet-152's wall time in the same precision, GFLOP per clip (counted with
``torch.utils.flop_counter`` on one model input), the forward passes' GFLOP/s and its share of the
matrix-product rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: The teachers with random weights of the real size (a stand-in tokenizer: timing only).
TEACHER_FEATURES = {
    "clip_image": {"extractor": "clip_vit_l14", "weights": "none", "seed": 0},
    "clap_audio": {"extractor": "clap_htsat_fusion", "weights": "none", "seed": 0},
}
COMPARED = ("frame", "clip_image", "clap_audio")
#: The columns of the printed table.
COLUMNS = ("role", "precision", "s/clip", "forward s/clip", "ratio to ResNet-152", "GFLOP/clip", "GFLOP/s",
           "share of matmul rate")


def gflop_per_clip(role: str, settings: dict, seconds: float) -> float:
    """GFLOP of one clip's forward passes in ``role`` (the class prompts, embedded once per run,
    are left out)."""
    import torch

    from avvp.stages.extractors import create_extractor
    from extract import count_gflop

    ext = create_extractor(settings[role], role, engine="eager")
    if role == "frame":
        crop = settings["frame"]["crop"] or settings["frame"]["size"]
        unit, run = torch.zeros(1, 3, crop, crop), ext.model
    else:
        unit, run = torch.zeros(1, *ext.unit_shape), ext.embed_units
    return count_gflop(run, unit) * ext.units(seconds)


def pure_forward(result: dict, units: int, batch: int) -> float:
    """Forward seconds of all ``units``: a JIT run's first batch is inside its compile pass (timed
    as compiling), so its forward time covers ``units - batch`` units; scale it to all of them."""
    if result["compile"] > 0 and units > batch:
        return result["forward"] * units / (units - batch)
    return result["forward"]


def bench_teachers(manifest: Path, root: Path, n: int, seconds: float, threads: int, settings: dict,
                   precisions: list[str], device: str, rounds: int = 1) -> list[dict]:
    """Time each role of :data:`COMPARED` in each precision, interleaved over ``rounds``; print
    the runs and the table; return the table's rows (column → value)."""
    from avvp.stages.extraction import feature_settings, role_batch
    from avvp.stages.extractors.base import whole_seconds
    from extract import matmul_rate, run_avvp

    gflop = {role: gflop_per_clip(role, settings, seconds) for role in COMPARED}
    checked = feature_settings(settings)
    units = {r: n * whole_seconds(seconds) * (8 if r == "frame" else 1) + (n if r == "clap_audio" else 0)
             for r in COMPARED}
    batches = {r: role_batch(checked, r) for r in COMPARED}
    variants = [(role, p) for role in COMPARED for p in precisions]
    results: dict[tuple, list[dict]] = {v: [] for v in variants}
    limits: dict[str, float] = {p: 0.0 for p in precisions}
    print("GFLOP per clip: " + ", ".join(f"{r} {g:.0f}" for r, g in gflop.items())
          + f"; batches {batches}", flush=True)
    for k in range(rounds):
        for precision in precisions:
            limits[precision] = max(limits[precision], matmul_rate(precision, threads, device))
        for role, precision in (variants if k % 2 == 0 else variants[::-1]):
            run = {**settings, role: {**settings[role], "precision": precision}}
            result = run_avvp(manifest, root / f"teacher_{role}_{precision}", run, threads, roles=[role])
            results[(role, precision)].append(result)
            print(f"  round {k + 1}: {role:10s} {precision} {result['wall'] / n:7.2f} s per clip (forward "
                  f"{result['forward'] / n:.2f} s, compiling {result['compile']:.1f} s)", flush=True)
        rows = _table(results, n, seconds, k + 1, gflop, limits, units, batches)
    return rows


def _table(results: dict, n: int, seconds: float, rounds: int, gflop: dict, limits: dict, units: dict,
           batches: dict) -> list[dict]:
    """Print the table of the rounds so far (a run stopped later still leaves it); return its rows."""
    print("matrix-product rate (best of the rounds, 2048² in a fresh process): "
          + ", ".join(f"{p} {v:.0f} GFLOP/s" for p, v in limits.items()))
    rows = []
    for (role, precision), runs in results.items():
        wall = float(np.mean([r["wall"] for r in runs])) / n
        forward = float(np.mean([pure_forward(r, units[role], batches[role]) for r in runs])) / n
        base = float(np.mean([r["wall"] for r in results[("frame", precision)]])) / n
        # below the report's resolution (0.01 s for all clips) the rate is not measured: n/a
        rate = gflop[role] / forward if forward * n >= 0.01 else float("nan")
        rows.append(dict(zip(COLUMNS, (role, precision, wall, forward, wall / base, gflop[role], rate,
                                       rate / limits[precision]))))
    print(f"\n{n} clips of {seconds:g} s, whole processes, mean of {rounds} interleaved round(s):")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        print(f"| {row['role']} | {row['precision']} | {row['s/clip']:.2f} | {row['forward s/clip']:.2f} | "
              f"{row['ratio to ResNet-152']:.2f}x | {_figure(row['GFLOP/clip'])} | {_figure(row['GFLOP/s'])} | "
              f"{_figure(100 * row['share of matmul rate'])}% |", flush=True)
    return rows


def _figure(value: float) -> str:
    """A table figure: whole above 100, three significant digits below (tiny test models), n/a
    where not measured."""
    if value != value:
        return "n/a"
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"
