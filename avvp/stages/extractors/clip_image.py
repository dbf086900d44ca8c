"""VALOR's visual teacher: CLIP ViT-L/14 image embeddings and class scores, one frame per segment.

Of the N frames ``ffmpeg -r 8`` writes for the window (all of them: N is not forced to 8T, VALOR
samples the list of JPEGs it has), T are taken at indices round(linspace(0, N − 1, T)) with numpy's
rounding (halves to even): for N = 80 frames 0, 9, 18, 26, 35, 44, 53, 61, 70, 79, from the clip's
first frame to its last (not the centres of the segments); for N = 81, 0, 9, 18, 27, 36, 44, 53, 62,
71, 80. Each is scaled to [0, 1], squashed to 224 × 224 (aspect ratio not kept, no crop)
by bilinear interpolation **without antialiasing**, and normalised with CLIP's mean and std.

Stored per video: ``features`` (T, 768), the L2-normalised projected image embedding, and
``scores`` (T, 25): 100 · cos(image, prompt) for the 25 class prompts of
:mod:`avvp.stages.teachers.prompts` (the factor is the checkpoint's exp(logit_scale), read from it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from avvp.stages.teachers.models import Teacher, load_clip
from avvp.stages.teachers.prompts import CLIP_PROMPTS
from avvp.stages.extractors import register_extractor
from avvp.stages.extractors.teacher import TeacherExtractor

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIZE = 224


def frame_indices(n_frames: int, count: int) -> np.ndarray:
    """round(linspace(0, n_frames − 1, count)) with numpy's rounding (halves to even)."""
    return np.round(np.linspace(0, n_frames - 1, count)).astype(np.int64)


def squash(frames: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, size, size) float32 in [0, 1], bilinear without antialiasing
    (what torchvision 0.13's tensor ``Resize`` did by default)."""
    from torchvision.transforms.v2 import functional as F

    x = frames.permute(0, 3, 1, 2).float().div_(255.0)
    return F.resize(x, [size, size], interpolation=F.InterpolationMode.BILINEAR, antialias=False)


@register_extractor("clip_vit_l14")
class ClipImageExtractor(TeacherExtractor):
    """One CLIP image embedding (and 25 class scores) per second (settings: weights,
    text_encoder, seed)."""

    role = "clip_image"
    stream = "video"
    unit_shape = (3, SIZE, SIZE)
    prompts = CLIP_PROMPTS
    defaults = {"extractor": "clip_vit_l14", "weights": "openai/clip-vit-large-patch14",
                "text_encoder": None, "seed": 0}

    def load_teacher(self) -> Teacher:
        return load_clip(self.settings["weights"], self.settings["text_encoder"], self.settings["seed"])

    def setup(self) -> None:
        self.dim = int(self.model.config.projection_dim)
        shape = (1, 3, 1, 1)
        self._mean = torch.tensor(CLIP_MEAN, device=self.device).view(shape)
        self._std = torch.tensor(CLIP_STD, device=self.device).view(shape)

    def read_logit_scale(self) -> float:
        return self.model.logit_scale.exp().item()

    def units(self, duration: float) -> int:
        return self.segments(duration)

    def request(self, duration: float) -> dict:
        """Every frame ``ffmpeg -r 8`` gives for the window (``n_frames`` None), not 8T spread ones."""
        return {**super().request(duration), "n_frames": None}

    def units_from(self, streams, path: str | Path, duration: float) -> torch.Tensor:
        frames = streams.need_frames().frames
        picked = frames[frame_indices(len(frames), self.segments(duration))]
        return squash(torch.from_numpy(np.ascontiguousarray(picked)))

    def embed_units(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (x - self._mean) / self._std
        with self.engine.autocast():
            pooled = self.model.vision_model(pixel_values=x).pooler_output
            emb = self.model.visual_projection(pooled)
        emb = self.normalised(emb)
        return emb, emb

    def assemble(self, rows: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return rows[:, self.classes:], {"scores": rows[:, :self.classes]}

