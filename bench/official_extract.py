"""The official LLP feature extraction, step by step, as the baseline of ``bench/extract.py``.

Written from its description (no code copied), one step per process as the
official scripts run, each over every video of a list:

* ``frames``: ``ffmpeg -i <video> -y -r 8 <dir>/%06d.jpg`` per video (JPEG files at source size);
* ``rgb``: per video, the sorted JPEGs, 80 of them at ``round(linspace(0, N − 1, 80))``, each read
  with PIL, ``Resize(256)`` + ``CenterCrop(224)`` + ``ToTensor`` + ImageNet normalisation, and ONE
  forward pass of the 80 frames through ResNet-152 without its classifier → (80, 2048);
* ``3d``: the same 80 JPEGs read again, each resized to 112 × 112 (no aspect, no crop), Kinetics
  normalisation, 10 clips of 8 frames in one forward pass of R(2+1)D-18 without its fc → (10, 512);
* ``audio``: ``ffmpeg -i <video> -vn -ac 2 -ar 16000 -acodec pcm_s16le <id>.wav`` per video (the
  16-kHz 16-bit WAV the official moviepy call writes);
* ``vggish``: per WAV, the channel mean, the VGGish log-mel examples and one forward pass of the
  VGGish network → (10, 128) (the official VGGish step is unpublished; this is the standard one).

Networks have seeded random weights (``torch.manual_seed(0)`` before each is built, as avvp's
``weights: none, seed: 0`` does, so both sides run the same networks), run in fp32, eager,
contiguous NCHW, under ``torch.no_grad()``. Each step prints ``forward <seconds>`` (its time inside
the forward passes) so the benchmark can tell model time from the rest.

Usage: ``python bench/official_extract.py STEP --videos LIST --work DIR [--threads 2] [--device cpu]``
where LIST holds one video path per line and DIR receives ``frames/``, ``wav/`` and ``feats/``.
``--backbone``, ``--size``, ``--crop`` and ``--clip-size`` change the networks and sizes (default
the official ResNet-152, 256, 224 and 112), for quick smoke tests.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

STEPS = ("frames", "audio", "rgb", "3d", "vggish")
N_FRAMES = 80


def _ids(videos: list[Path]) -> list[str]:
    return [v.stem for v in videos]


def frames(videos: list[Path], work: Path) -> None:
    for vid, video in zip(_ids(videos), videos):
        out = work / "frames" / vid
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-y", "-r", "8", str(out / "%06d.jpg")],
                       check=True)


def audio(videos: list[Path], work: Path) -> None:
    (work / "wav").mkdir(parents=True, exist_ok=True)
    for vid, video in zip(_ids(videos), videos):
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-y", "-vn", "-ac", "2", "-ar", "16000",
                        "-acodec", "pcm_s16le", str(work / "wav" / f"{vid}.wav")], check=True)


def _sampled_jpegs(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.jpg"))
    picks = np.round(np.linspace(0, len(files) - 1, N_FRAMES)).astype(int)
    return [files[i] for i in picks]


def _headless(model):
    import torch

    model.fc = torch.nn.Identity()
    return model.eval()


def _embed(videos: list[Path], work: Path, device: str, model, folder: str, load) -> float:
    """Per video: ``load(vid)`` → one batch, ONE forward pass, ``feats/<folder>/<vid>.npy``;
    returns the seconds spent in the forward passes."""
    import torch

    forward = 0.0
    (work / "feats" / folder).mkdir(parents=True, exist_ok=True)
    for vid in _ids(videos):
        batch = load(vid)
        start = time.perf_counter()
        with torch.no_grad():
            out = model(batch.to(device)).cpu().numpy()
        forward += time.perf_counter() - start
        np.save(work / "feats" / folder / f"{vid}.npy", out)
    return forward


def rgb(videos: list[Path], work: Path, device: str, args) -> float:
    import torch
    import torchvision
    from PIL import Image
    from torchvision import transforms

    torch.manual_seed(0)
    model = _headless(torchvision.models.get_model(args.backbone, weights=None)).to(device)
    prep = transforms.Compose([transforms.Resize(args.size), transforms.CenterCrop(args.crop), transforms.ToTensor(),
                               transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])

    def load(vid: str):
        return torch.stack([prep(Image.open(f).convert("RGB")) for f in _sampled_jpegs(work / "frames" / vid)])

    return _embed(videos, work, device, model, "res152", load)


def clips3d(videos: list[Path], work: Path, device: str, args) -> float:
    import torch
    import torchvision
    from PIL import Image
    from torchvision import transforms

    torch.manual_seed(0)
    model = _headless(torchvision.models.video.r2plus1d_18(weights=None)).to(device)
    prep = transforms.Compose([transforms.ToTensor(),
                               transforms.Normalize((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))])
    side = args.clip_size

    def load(vid: str):
        images = [prep(Image.open(f).convert("RGB").resize((side, side), Image.BILINEAR))
                  for f in _sampled_jpegs(work / "frames" / vid)]
        return torch.stack(images).view(N_FRAMES // 8, 8, 3, side, side).permute(0, 2, 1, 3, 4)

    return _embed(videos, work, device, model, "r2plus1d_18", load)


def vggish(videos: list[Path], work: Path, device: str, args) -> float:
    import wave

    import torch

    from avvp.stages.extractors.vggish import VGGish, examples

    torch.manual_seed(0)
    model = VGGish().eval().to(device)

    def load(vid: str):
        with wave.open(str(work / "wav" / f"{vid}.wav")) as wav:
            raw = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
            samples = raw.reshape(-1, wav.getnchannels()).mean(axis=1) / 32768.0
        return torch.from_numpy(examples(samples))

    return _embed(videos, work, device, model, "vggish", load)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--videos", required=True, help="a file with one video path per line")
    parser.add_argument("--work", required=True, help="folder for frames/, wav/ and feats/")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", default="resnet152", help="the 2-D network (torchvision name)")
    parser.add_argument("--size", type=int, default=256, help="Resize() of the 2-D step")
    parser.add_argument("--crop", type=int, default=224, help="CenterCrop() of the 2-D step")
    parser.add_argument("--clip-size", type=int, default=112, help="frame side of the 3-D step")
    args = parser.parse_args(argv)
    videos = [Path(line) for line in Path(args.videos).read_text().split("\n") if line.strip()]
    work = Path(args.work)
    forward = 0.0
    if args.step == "frames":
        frames(videos, work)
    elif args.step == "audio":
        audio(videos, work)
    else:
        import torch

        torch.set_num_threads(args.threads)
        step = {"rgb": rgb, "3d": clips3d, "vggish": vggish}[args.step]
        forward = step(videos, work, args.device, args)
    print(f"forward {forward:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
