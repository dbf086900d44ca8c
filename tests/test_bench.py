"""The benchmark scripts run, and what they compare is the same computation."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _run(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _loops(stdout: str) -> dict[str, dict[str, float]]:
    """Per loop: epoch seconds, mean loss and validation segment Type@AV, from the report lines."""
    pattern = re.compile(r"^\s*(?P<name>[\w -]+?): +(?P<epoch>[\d.]+) s/epoch wall = train +[\d.]+ \+ "
                         r"validation +[\d.]+ .*mean loss (?P<loss>[\d.]+); val segment Type@AV "
                         r"(?P<val>[\d.]+)", re.M)
    return {m["name"]: {k: float(m[k]) for k in ("epoch", "loss", "val")} for m in pattern.finditer(stdout)}


def test_train_bench_loops_compute_the_same_losses_and_scores(tmp_path):
    out = _run("train.py", "--videos", "48", "--val-videos", "12", "--classes", "6", "--threads", "1",
               "--chunk", "1", "--contrastive", "--dir", str(tmp_path))
    loops = _loops(out)
    assert set(loops) == {"official-style", "avvp fp32", "avvp bf16"}, out
    official, fp32, bf16 = loops["official-style"], loops["avvp fp32"], loops["avvp bf16"]
    # Same model, data, order and dropout masks: fp32 agrees to float rounding, bf16 closely.
    assert fp32["loss"] == pytest.approx(official["loss"], abs=1e-5)
    assert bf16["loss"] == pytest.approx(official["loss"], rel=2e-2)
    assert bf16["loss"] != fp32["loss"]
    # The per-video loop over the dense table and the vectorised metrics score alike.
    assert fp32["val"] == pytest.approx(official["val"], abs=1e-3)
    assert len(re.findall(r"speed-up of avvp (fp32|bf16): [\d.]+x per epoch", out)) == 2
    assert not list(tmp_path.iterdir())   # the .npy files are removed


@pytest.mark.parametrize("args, message", [
    (["--precision", "fp16"], "--precision 'fp16'"),
    (["--device", "cuda:7"], "--device cuda:7: no usable CUDA device"),
])
def test_train_bench_rejects_bad_options(args, message):
    import torch

    if args[0] == "--device" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    proc = subprocess.run([sys.executable, str(BENCH / "train.py"), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the official procedure needs the ffmpeg tool")
def test_extract_bench_compares_avvp_with_the_official_procedure(tmp_path):
    """Both sides run as processes on the same clips with the same (small) networks and weights:
    their features agree up to what JPEG files and PIL's resizing change, bf16 is close to fp32."""
    tiny = {"frame": {"backbone": "resnet18", "size": 40, "crop": 32}, "clip": {"size": 16}}
    out = _run("extract.py", "--n", "1", "--threads", "1", "--settings", json.dumps(tiny),
               "--keep", str(tmp_path))
    for variant in ("official", "avvp fp32", "avvp bf16"):
        assert re.search(rf"^  {variant} +[\d.]+ s ", out, re.M), out
    ratios = re.findall(r"official / avvp = ([\d.]+)x", out)
    assert len(ratios) == 2 and all(float(r) > 0 for r in ratios), out
    assert all(float(v) >= 1.0 for v in re.findall(r"wall / pure forward ([\d.]+)", out)), out
    assert len(re.findall(r"(\d+) GFLOP/s in the forward passes", out)) == 2, out
    shares = re.findall(r"(\d+)% of this machine's (fp32|bf16) matrix-product rate \(([\d.]+) GFLOP/s\)", out)
    assert sorted(p for _, p, _ in shares) == ["bf16", "fp32"] and all(float(r) > 0 for *_, r in shares), out
    bf16 = dict(re.findall(r"(audio|frame|clip) ([\d.e+-]+)", out.split("bf16 against fp32 features")[1].split("\n")[0]))
    assert set(bf16) == {"audio", "frame", "clip"} and all(1e-5 < float(v) < 0.1 for v in bf16.values()), out
    line = out.split("avvp fp32 against the official procedure's features")[1].split("\n")[0]
    official = {r: float(v) for r, v in re.findall(r"(audio|frame|clip) ([\d.e+-]+)", line)}
    assert official["audio"] < 0.01 and official["frame"] < 0.5 and official["clip"] < 0.5, out


def test_evaluate_and_refine_benches_print_their_figures(llp_dir):
    out = _run("evaluate.py", "--repeats", "1", "--annotations", str(llp_dir))
    assert re.search(r"evaluate_arrays .*: [\d.]+ ms", out), out
    out = _run("refine.py", "--videos", "32", "--repeats", "1", "--threads", "1")
    assert re.search(r"refine / epoch = [\d.]+", out), out


def test_extract_bench_times_the_teachers_beside_resnet(tmp_path):
    """The teacher part in a tiny mode (tiny random teachers written here, ResNet-18 at 32 px, one
    2-s clip): every role × precision row of the table, with positive numbers; no timing asserted."""
    from test_teachers import write_clap_teacher, write_clip_teacher

    tiny = {"frame": {"backbone": "resnet18", "size": 40, "crop": 32},  # 16 frames: 4 batches of 4
            "batch_size": {"audio": 20, "frame": 4, "clip": 5, "clip_image": 10, "clap_audio": 11},
            "clip_image": {"weights": str(write_clip_teacher(tmp_path / "clip"))},
            "clap_audio": {"weights": str(write_clap_teacher(tmp_path / "clap"))}}
    out = _run("extract.py", "--teachers", "--n", "1", "--seconds", "2", "--threads", "1",
               "--settings", json.dumps(tiny), "--keep", str(tmp_path / "run"))
    assert re.search(r"CPU .+, \d{4}-\d\d-\d\d \d\d:\d\d UTC", out), out
    number, rate = r"([\d.e+-]+)", r"([\d.e+-]+|n/a)"  # n/a: forward time below the report's resolution
    rows = re.findall(rf"^\| (frame|clip_image|clap_audio) \| (fp32|bf16) \| {number} \| {number} \| {number}x \| "
                      rf"{number} \| {rate} \| {rate}% \|$", out, re.M)
    assert sorted((r, p) for r, p, *_ in rows) == sorted(
        (r, p) for r in ("frame", "clip_image", "clap_audio") for p in ("fp32", "bf16")), out
    for role, precision, wall, forward, ratio, gflop, speed, share in rows:
        assert float(wall) > float(forward) >= 0 and float(gflop) > 0 and float(ratio) > 0, out
        assert role != "frame" or float(ratio) == 1.0, out
        assert (speed == "n/a") == (share == "n/a"), out
        assert speed == "n/a" or (float(speed) > 0 and float(share) > 0), out
    assert len(re.findall(r"round 1: ", out)) == 6, out
    assert re.search(r"matrix-product rate .*fp32 [\d.]+ GFLOP/s, bf16 [\d.]+ GFLOP/s", out), out
