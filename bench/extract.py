"""Benchmark feature extraction: avvp against the official procedure, as whole processes.

Both sides run the official extractors (VGGish, ResNet-152 at 256 → 224, R(2+1)D-18 at 112) with
seeded random weights on the same clips, each as fresh Python processes with the same number of
torch threads, taking turns (interleaved rounds, the order reversed every round) so that they
share whatever else loads the machine:

* **official**: the official scripts' procedure, step by step, one process per step over all
  clips (``bench/official_extract.py``): ``ffmpeg -r 8`` to JPEG files; PIL + Resize(256) +
  CenterCrop(224) + normalisation and ONE ResNet-152 forward pass of each clip's 80 frames; the
  JPEGs read again and resized to 112 × 112 for R(2+1)D-18; the WAV written with ffmpeg and VGGish
  on it;
* **avvp fp32** / **avvp bf16**: one ``avvp extract --role all`` process over all clips (each clip
  decoded once for the three roles, the models run as :mod:`avvp.stages.extractors.engine` says).

It prints, per clip: wall time (whole processes, Python start-up included) of each, official ÷
avvp, avvp's wall ÷ its pure forward time (the forward passes without the compile passes), the
arithmetic rate the forward passes reached (GFLOP/s, FLOPs counted with
``torch.utils.flop_counter``), and how much bf16 features differ from fp32 ones. ``--device
cuda`` runs both on the GPU, avvp with ``--workers`` decoding processes, and prints clips per
second and the share of time the GPU waited for decoded clips.

Examples::

    python bench/extract.py                        # 10 clips of 10 s at 320x240 (the real LLP
                                                   # sample + 9 synthetic), 2 threads, 1 round
    python bench/extract.py --n 12 --rounds 2
    python bench/extract.py --clips results/demo/clips --n 4 --precision fp32 --no-official
    python bench/extract.py --device cuda --workers 6 --n 200 --no-official
    python bench/extract.py --teachers --rounds 2     # VALOR's teachers beside ResNet-152,
                                                      # interleaved (bench/teachers.py), 10
                                                      # synthetic demo-sized (128x96) clips
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path(os.environ.get("AVVP_SHARED", REPO.parent / "shared")) / "llp" / "sample" / "BjCEufrlXm4.mp4"
ROLES = ("audio", "frame", "clip")
#: The official extractors (random weights: nothing is downloaded).
OFFICIAL_FEATURES = {
    "audio": {"extractor": "vggish", "weights": "none", "seed": 0},
    "frame": {"extractor": "resnet152", "backbone": "resnet152", "weights": "none", "seed": 0,
              "size": 256, "crop": 224},
    "clip": {"extractor": "r2plus1d_18", "weights": "none", "seed": 0, "size": 112},
}
OFFICIAL_STEPS = ("frames", "audio", "rgb", "3d", "vggish")


def synthetic_clips(folder: Path, n: int, seconds: float, size=(320, 240), fps: int = 30,
                    rate: int = 44100) -> list[Path]:
    """Write ``n`` H.264/AAC clips like the demo's (moving squares, a noisy tone) with the demo's
    clip writer (:func:`avvp.stages.synth.render.write_clip`)."""
    from avvp.stages.synth.render import write_clip

    rng = np.random.default_rng(0)
    settings = {"fps": fps, "sample_rate": rate, "crf": 23, "audio_bitrate": 128000}
    paths = []
    for k in range(n):
        frames = np.full((int(seconds * fps), size[1], size[0], 3), 40 + 10 * (k % 10), np.uint8)
        for i, img in enumerate(frames):
            x = (i * 3 + 7 * k) % (size[0] - 48)
            img[size[1] // 3:size[1] // 3 + 48, x:x + 48] = (220, 60 + k % 150, 30)
            img[::7, (i + k) % size[0]] = 255
        t = np.arange(int(seconds * rate)) / rate
        tone = 0.2 * np.sin(2 * np.pi * (300 + 40 * k) * t) + 0.05 * rng.standard_normal(len(t))
        path = folder / f"bench{k:06d}.mp4"
        write_clip(path, frames, np.stack([tone, tone]).astype(np.float32), settings)
        paths.append(path)
    return paths


def count_gflop(run, x) -> float:
    """GFLOP of ``run(x)`` (``torch.utils.flop_counter``, 2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        run(x)
    return counter.get_total_flops() / 1e9


def gflop_per_unit(features: dict) -> dict[str, float]:
    """GFLOP of one model input's forward pass per role."""
    import torch

    from avvp.stages.extractors import create_extractor

    crop = features["frame"]["crop"] or features["frame"]["size"]
    shapes = {"audio": (1, 1, 96, 64), "frame": (1, 3, crop, crop),
              "clip": (1, 3, 8, features["clip"]["size"], features["clip"]["size"])}
    out = {}
    for role in ROLES:
        ext = create_extractor(features[role], role, engine="eager")  # the plain model's FLOPs
        out[role] = count_gflop(ext.model, torch.zeros(shapes[role]))
    return out


#: The hardware limit the forward passes are set against: a large matrix product in the run's
#: precision, in a fresh process with the benchmark's threads (best of five).
RATE_PROBE = """
import sys, time, torch
device, dtype, threads = sys.argv[1], getattr(torch, sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
n = 2048
a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
best = float("inf")
for _ in range(6):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(4):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    best = min(best, (time.perf_counter() - start) / 4)
print(2 * n ** 3 / best / 1e9)
"""


def matmul_rate(precision: str, threads: int, device: str) -> float:
    """GFLOP/s of a 2048-square matrix product in ``precision`` on ``device`` (the hardware limit
    the benchmark reports its share of)."""
    dtype = {"fp32": "float32", "bf16": "bfloat16"}[precision]
    proc = subprocess.run([sys.executable, "-c", RATE_PROBE, device, dtype, str(threads)],
                          capture_output=True, text=True, env=_env(threads))
    if proc.returncode != 0:
        raise SystemExit(f"the matrix-product probe failed:\n{proc.stderr[-2000:]}")
    return float(proc.stdout.split()[-1])


def run_official(videos: Path, work: Path, threads: int, device: str, settings: dict) -> dict:
    """The official steps, one process each, with the networks and sizes of ``settings`` (the
    official ones by default); returns wall and forward seconds per step."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    frame, clip = settings["frame"], settings["clip"]
    sizes = ["--backbone", frame["backbone"], "--size", str(frame["size"]),
             "--crop", str(frame["crop"] or frame["size"]), "--clip-size", str(clip["size"])]
    steps = {}
    for step in OFFICIAL_STEPS:
        proc, wall, cpu = _timed([sys.executable, str(REPO / "bench" / "official_extract.py"), step, "--videos",
                                  str(videos), "--work", str(work), "--threads", str(threads), "--device", device,
                                  *sizes], threads)
        if proc.returncode != 0:
            raise SystemExit(f"official step {step} failed:\n{proc.stderr[-3000:]}")
        steps[step] = {"wall": wall, "cpu": cpu, "forward": float(re.search(r"forward ([\d.]+)", proc.stdout)[1])}
    return {key: sum(s[key] for s in steps.values()) for key in ("wall", "cpu", "forward")} | {"steps": steps}


def run_avvp(manifest: Path, out: Path, settings: dict, threads: int, roles=("all",)) -> dict:
    """One ``avvp extract --role <roles>`` process; returns its wall time and what it reports."""
    shutil.rmtree(out, ignore_errors=True)
    proc, wall, cpu = _timed([sys.executable, "-m", "avvp", "--threads", str(threads), "extract", "--manifest",
                              str(manifest), "--role", *roles, "--settings", json.dumps(settings), "--shards", "1",
                              "--out", str(out / "{role}.h5"), "--failures", str(out / "{role}.parquet"),
                              "--no-progress"], threads)
    if proc.returncode != 0:
        raise SystemExit(f"avvp extract failed:\n{proc.stderr[-3000:]}")
    match = re.search(r"clips in ([\d.]+) s .*forward passes ([\d.]+) s .*compiling the models ([\d.]+) s, "
                      r"waiting for decoded clips ([\d.]+) s", proc.stdout)
    job, forward, compiling, waiting = (float(v) for v in match.groups())
    failed = sum(int(m) for m in re.findall(r"(\d+) failures", proc.stdout))
    if failed:
        raise SystemExit(f"avvp extract reported failures:\n{proc.stdout}")
    return {"wall": wall, "cpu": cpu, "job": job, "forward": forward, "compile": compiling, "wait": waiting}


def cpu_model() -> str:
    """The CPU's model name (as ``lscpu`` gives it), for the printed figures."""
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or "unknown CPU"


def _timed(cmd: list[str], threads: int) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a process; returns it, its wall time and the CPU time (user + system) it and its
    children used (less sensitive than wall time to other work on a shared machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(threads))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, wall, cpu


def _env(threads: int) -> dict:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=path)


def feature_difference(a: Path, b: Path) -> dict[str, float]:
    """Relative error norm of store ``b`` against store ``a``, per role."""
    from avvp.core.feature_store import read_store

    out = {}
    for role in ROLES:
        ids, x, _ = read_store(a / f"{role}.h5")
        _, y, _ = read_store(b / f"{role}.h5", ids)
        out[role] = float(np.linalg.norm(y - x) / np.linalg.norm(x))
    return out


def official_difference(official: Path, avvp: Path, paths: list[Path], ids: list[str]) -> dict[str, float]:
    """Relative error norm of avvp's features against the official procedure's (same networks and
    weights: what differs is JPEG compression and PIL's resizing against direct decoding)."""
    from avvp.core.feature_store import read_store

    folders = {"audio": "vggish", "frame": "res152", "clip": "r2plus1d_18"}
    out = {}
    for role, folder in folders.items():
        x = np.stack([np.load(official / "feats" / folder / f"{p.stem}.npy") for p in paths])
        y = read_store(avvp / f"{role}.h5", ids)[1]
        out[role] = float(np.linalg.norm(y - x) / np.linalg.norm(x))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", default=None, help="folder of .mp4 clips (default: the LLP sample + synthetic)")
    parser.add_argument("--n", type=int, default=10, help="number of clips")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (s)")
    parser.add_argument("--size", default=None,
                        help="synthetic clip size WxH (default 320x240; 128x96, the demo's, with --teachers)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every process")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (order reversed each round)")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--workers", type=int, default=None,
                        help="avvp decoding workers (default: 1 thread on the CPU, 4 processes on CUDA)")
    parser.add_argument("--batch-size", type=int, default=None, help="avvp features.batch_size")
    parser.add_argument("--settings", default=None, help="JSON merged over avvp's features settings")
    parser.add_argument("--no-official", action="store_true", help="time avvp alone")
    parser.add_argument("--keep", default=None, help="keep clips and outputs in this folder")
    parser.add_argument("--teachers", action="store_true",
                        help="time VALOR's teachers (CLIP, CLAP) beside ResNet-152 instead (bench/teachers.py; "
                             "synthetic clips only)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            parser.error(f"--device {args.device}: no usable CUDA device")
    official = not args.no_official and not args.teachers
    if official and shutil.which("ffmpeg") is None:
        parser.error("the official procedure needs the ffmpeg tool (or use --no-official)")

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="avvp-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        return _bench(args, root, official)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def _bench(args, root: Path, official: bool) -> int:
    clips_dir = root / "clips"
    clips_dir.mkdir(exist_ok=True)
    width, height = (int(v) for v in (args.size or ("128x96" if args.teachers else "320x240")).split("x"))
    if args.clips:
        paths = sorted(Path(args.clips).glob("*.mp4"))[: args.n]
    else:
        real = [SAMPLE] if SAMPLE.exists() and args.seconds <= 10 and not args.teachers else []
        paths = real + synthetic_clips(clips_dir, args.n - len(real), args.seconds, (width, height))
    ids = [f"{p.stem}_0_{args.seconds:g}" for p in paths]
    manifest = root / "manifest.parquet"
    pd.DataFrame({"video_id": ids, "start": 0.0, "end": args.seconds, "path": [str(p) for p in paths]}
                 ).to_parquet(manifest)
    videos = root / "videos.txt"
    videos.write_text("\n".join(str(p) for p in paths) + "\n")

    cuda = args.device.startswith("cuda")
    workers = args.workers or (4 if cuda else 1)
    settings = {"device": args.device, "threads": args.threads, "workers": workers,
                "loader": "process" if cuda else "thread",
                "prefetch": 2 * workers + 2, **{r: dict(v) for r, v in OFFICIAL_FEATURES.items()}}
    if args.batch_size:
        settings["batch_size"] = args.batch_size
    if args.teachers:
        from teachers import TEACHER_FEATURES

        settings.update({r: dict(v) for r, v in TEACHER_FEATURES.items()})
    for key, value in json.loads(args.settings or "{}").items():
        settings[key] = {**settings.get(key, {}), **value} if isinstance(value, dict) else value
    from avvp.stages.extraction import feature_settings, role_batch
    from avvp.stages.extractors.base import whole_seconds

    if args.teachers:
        from teachers import bench_teachers

        print(f"{len(paths)} clips of {args.seconds:g} s{'' if args.clips else f' at {width}x{height}'}, device {args.device}, {args.threads} "
              f"torch threads per process; CPU {cpu_model()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
              flush=True)
        bench_teachers(manifest, root, len(paths), args.seconds, args.threads, settings, args.precision,
                       args.device, args.rounds)
        return 0

    per_unit = gflop_per_unit(settings)
    units = {r: whole_seconds(args.seconds) * (8 if r == "frame" else 1) for r in ROLES}
    gflop = {r: per_unit[r] * units[r] for r in ROLES}
    total_gflop = sum(gflop.values()) * len(paths)
    batches = {r: role_batch(feature_settings(settings), r) for r in ROLES}
    print(f"{len(paths)} clips of {args.seconds:g} s ({'the real LLP sample and ' if SAMPLE in paths else ''}"
          f"{sum(p != SAMPLE for p in paths)} others), device {args.device}, {args.threads} torch threads per "
          f"process, avvp batches {batches}, {workers} decoding "
          f"{settings['loader']}(s); {sum(gflop.values()):.0f} GFLOP per clip "
          f"({', '.join(f'{r} {v:.0f}' for r, v in gflop.items())})", flush=True)

    variants = (["official"] if official else []) + [f"avvp {p}" for p in args.precision]
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for k in range(args.rounds):
        for variant in (variants if k % 2 == 0 else variants[::-1]):
            if variant == "official":
                result = run_official(videos, root / "official", args.threads, args.device, settings)
            else:
                precision = variant.split()[1]
                run = {**settings, **{r: {**settings[r], "precision": precision} for r in ROLES}}
                result = run_avvp(manifest, root / variant.replace(" ", "_"), run, args.threads)
            results[variant].append(result)
            print(f"  round {k + 1}: {variant:10s} {result['wall'] / len(paths):6.2f} s per clip "
                  f"(forward {result['forward'] / len(paths):.2f} s, CPU {result['cpu'] / len(paths):.2f} s)",
                  flush=True)
    # The compile passes (one batch per role, timed as compiling) are left out of the pure forward
    # time; scale it up to all the work, so that it is the forward time of every input.
    compiled = sum(per_unit[r] * batches[r] for r in ROLES) / total_gflop
    limits = {p: matmul_rate(p, args.threads, args.device) for p in args.precision}
    _report(results, len(paths), total_gflop, cuda, root, args.precision, compiled, limits)
    if official and args.seconds == 10:  # the official procedure always takes 80 frames
        for precision in args.precision:
            diff = official_difference(root / "official", root / f"avvp_{precision}", paths, ids)
            print(f"avvp {precision} against the official procedure's features (relative error norm; JPEG "
                  "and PIL resizing against direct decoding): " + ", ".join(f"{r} {v:.2e}" for r, v in diff.items()))
    return 0


def _report(results: dict, n: int, total_gflop: float, cuda: bool, root: Path, precisions: list[str],
            compiled: float, limits: dict[str, float]) -> None:
    mean = {v: {k: float(np.mean([r[k] for r in rs])) for k in rs[0] if k != "steps"} for v, rs in results.items()}
    print("\nper clip (mean over rounds), whole processes:")
    base = mean.get("official")
    if base is not None:
        steps = {s: np.mean([r["steps"][s]["wall"] for r in results["official"]]) / n for s in OFFICIAL_STEPS}
        print(f"  official   {base['wall'] / n:6.2f} s   (" + ", ".join(f"{s} {t:.2f}" for s, t in steps.items())
              + f"; forward passes {base['forward'] / n:.2f} s, {total_gflop / base['forward']:.0f} GFLOP/s; "
              f"CPU time {base['cpu'] / n:.2f} s)"
              + (f"; {100 * total_gflop / base['forward'] / limits['fp32']:.0f}% of the fp32 matrix-product rate"
                 if "fp32" in limits else ""))
    for variant, m in mean.items():
        if variant == "official":
            continue
        pure = m["forward"] / (1 - compiled)  # every input's forward pass, the compile batches included
        line = (f"  {variant:10s} {m['wall'] / n:6.2f} s   (job {m['job'] / n:.2f} s, forward passes "
                f"{pure / n:.2f} s, compiling {m['compile']:.1f} s per run, waiting for input "
                f"{100 * m['wait'] / m['job']:.0f}% of the job); wall / pure forward {m['wall'] / pure:.2f}, "
                f"{total_gflop / pure:.0f} GFLOP/s in the forward passes, {total_gflop / m['wall']:.0f} overall")
        limit = limits[variant.split()[1]]
        line += (f"; {100 * total_gflop / pure / limit:.0f}% of this machine's {variant.split()[1]} "
                 f"matrix-product rate ({limit:.0f} GFLOP/s); CPU time {m['cpu'] / n:.2f} s")
        if base is not None:
            line += (f"; official / avvp = {base['wall'] / m['wall']:.2f}x "
                     f"(CPU time: {base['cpu'] / m['cpu']:.2f}x)")
        print(line)
        if cuda:
            print(f"  {variant:10s} {n / m['job']:.2f} clips/s; the GPU waited for decoded clips "
                  f"{100 * m['wait'] / m['job']:.0f}% of the time")
    if {"fp32", "bf16"} <= set(precisions):
        diff = feature_difference(root / "avvp_fp32", root / "avvp_bf16")
        print("bf16 against fp32 features (relative error norm): "
              + ", ".join(f"{r} {v:.2e}" for r, v in diff.items()))


if __name__ == "__main__":
    sys.exit(main())
