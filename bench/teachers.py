"""Benchmark VALOR's teachers beside ResNet-152 (``python bench/extract.py --teachers``).

Each of ``frame`` (the official ResNet-152 at 256 → 224, 80 frames per 10-s clip),
``clip_image`` (CLIP ViT-L/14, 10 frames at 224²) and ``clap_audio`` (CLAP HTS-AT fusion, 10 one-
second inputs + the whole clip, each a 10-s model input) runs alone as one whole
``avvp extract --role <role>`` process over the same clips, in fp32 and bf16, with random weights
of the real size (nothing is downloaded). Printed per role and precision: wall time per clip
(Python start-up and model construction included), the forward passes' time, their arithmetic
rate (FLOPs counted with ``torch.utils.flop_counter`` on one model input) and its share of this
machine's matrix-product rate in that precision, measured in the same run.
"""

from __future__ import annotations

from pathlib import Path

#: The teachers with random weights of the real size (a stand-in tokenizer: timing only).
TEACHER_FEATURES = {
    "clip_image": {"extractor": "clip_vit_l14", "weights": "none", "seed": 0},
    "clap_audio": {"extractor": "clap_htsat_fusion", "weights": "none", "seed": 0},
}
COMPARED = ("frame", "clip_image", "clap_audio")


def gflop_per_clip(role: str, settings: dict, seconds: float) -> float:
    """GFLOP of one clip's forward passes in ``role`` (the class prompts, embedded once per run,
    are left out)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from avvp.extractors import create_extractor

    ext = create_extractor(settings[role], role, engine="eager")
    if role == "frame":
        crop = settings["frame"]["crop"] or settings["frame"]["size"]
        unit, run = torch.zeros(1, 3, crop, crop), ext.model
    elif role == "clip_image":
        unit, run = torch.zeros(1, 3, 224, 224), ext.embed_units
    else:
        unit, run = torch.zeros(1, 480000), ext.embed_units
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        run(unit)
    return counter.get_total_flops() / 1e9 * ext.units(seconds)


def bench_teachers(manifest: Path, root: Path, n: int, seconds: float, threads: int, settings: dict,
                   precisions: list[str], device: str) -> None:
    """Time each role of :data:`COMPARED` alone, per precision, and print the comparison."""
    from extract import matmul_rate, run_avvp

    settings = {**settings, **{r: dict(v) for r, v in TEACHER_FEATURES.items()}}
    gflop = {role: gflop_per_clip(role, settings, seconds) for role in COMPARED}
    limits = {p: matmul_rate(p, threads, device) for p in precisions}
    print("\nteachers beside ResNet-152, each role alone, whole processes, per clip:")
    for role in COMPARED:
        for precision in precisions:
            run = {**settings, role: {**settings[role], "precision": precision}}
            result = run_avvp(manifest, root / f"teacher_{role}_{precision}", run, threads, roles=[role])
            rate = gflop[role] * n / max(result["forward"], 1e-9)
            print(f"  {role:10s} {precision}: {result['wall'] / n:6.2f} s wall (forward passes "
                  f"{result['forward'] / n:.2f} s, compiling {result['compile']:.1f} s per run), {gflop[role]:.0f} "
                  f"GFLOP per clip, {rate:.0f} GFLOP/s in the forward passes = {100 * rate / limits[precision]:.0f}% "
                  f"of this machine's {precision} matrix-product rate ({limits[precision]:.0f} GFLOP/s)", flush=True)
