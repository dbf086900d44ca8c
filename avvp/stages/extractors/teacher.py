"""The shared part of VALOR's teachers as extractors: a model and a text tower, per-class scores.

A teacher (:mod:`.clip_image`, :mod:`.clap_audio`) is an extractor like the others (its own role,
store, shards, failure table and resumption through ``avvp extract``), with two differences:

* its model is a transformers model loaded by :mod:`avvp.stages.teachers.models` (a local folder, the
  hub cache, an original checkpoint, or ``none`` for a random model of the real size), run
  eagerly (no TorchScript) in fp32, or bf16 under autocast with ``precision: bf16``;
* besides its features it stores each segment's score for each class (a ``scores`` dataset of
  shape (N, T, C) in the same store): the class prompts are embedded once at start-up, and a
  forward pass returns, per unit, the scores and the features side by side;
  :meth:`TeacherExtractor.assemble` splits one video's rows into the two.

Settings common to both: ``weights`` and ``text_encoder`` (see :mod:`avvp.stages.teachers.models`),
``seed`` (random weights only) and ``precision``.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from typing import Mapping

import numpy as np
import torch

from avvp.stages.teachers.models import Teacher
from avvp.stages.extractors.base import AUDIO_MIN_COVERAGE, AUDIO_TOLERANCE_S, Extractor


class EagerEngine:
    """How a teacher runs: eagerly, under bf16 autocast when asked (nothing to compile)."""

    setup_s = 0.0

    def __init__(self, device: torch.device, precision: str):
        self.device, self.precision = device, precision

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)


#: Share of a GPU's free memory that ``batch_size: auto`` fills, and the largest batch it picks.
GPU_MEMORY_SHARE = 0.7
GPU_BATCH_LIMIT = 512


def batch_for_memory(free: int, peak_one: int, peak_two: int, share: float = GPU_MEMORY_SHARE,
                     limit: int = GPU_BATCH_LIMIT) -> int:
    """The batch that fits ``share`` of ``free`` bytes, from the peak memory (bytes above what was
    allocated before) of a forward pass of one unit and of two: per unit ``peak_two - peak_one``,
    fixed ``peak_one`` less that. At least 1, at most ``limit``."""
    per_unit = max(peak_two - peak_one, 1)
    fixed = max(peak_one - per_unit, 0)
    return int(max(1, min(limit, (share * free - fixed) // per_unit)))


class TeacherExtractor(Extractor):
    """Base class of the teachers: loads the model, embeds the class prompts, runs the batches.

    Subclasses implement :meth:`load_teacher`, :meth:`read_logit_scale`, :meth:`embed_units` and
    :meth:`units_from`, set ``prompts`` (the class prompts, in class order) and ``token_options``
    (the tokenizer's padding options), and set ``dim`` (the stored feature size) in :meth:`setup`.
    """

    prompts: tuple[str, ...] = ()
    token_options: Mapping = {"padding": True}

    input_ndim = 0
    #: The shape of one model input unit (what :meth:`gpu_batch` probes with).
    unit_shape: tuple[int, ...] = ()

    def __init__(self, settings: Mapping, device: str | torch.device = "cpu", missing_audio: str = "error",
                 audio_tolerance: float = AUDIO_TOLERANCE_S, engine: str = "jit", batch_size: int | None = None,
                 audio_min_coverage: float = AUDIO_MIN_COVERAGE):
        self.configure(settings, device, missing_audio, audio_tolerance, engine, audio_min_coverage)
        self.head_prefixes = ()
        teacher = self.load_teacher()
        self.weights_identity = teacher.identity
        self.model = teacher.model.eval().requires_grad_(False).to(self.device)
        self.engine = EagerEngine(self.device, self.settings["precision"])
        with torch.inference_mode():
            text = self.embed_text(teacher)
        self.text = self.normalised(text)
        self.classes = len(self.text)
        self.logit_scale = float(self.read_logit_scale())
        self.dim = 0
        self.setup()

    def build_model(self):  # the model comes from load_teacher
        raise NotImplementedError

    @abstractmethod
    def load_teacher(self) -> Teacher:
        """The loaded model and tokenizer (from ``weights`` / ``text_encoder``)."""

    def embed_text(self, teacher: Teacher) -> torch.Tensor:
        """(C, P) embeddings of the class prompts (normalised afterwards): the text tower's pooled
        output through the model's text projection."""
        tokens = teacher.tokenizer(list(self.prompts), return_tensors="pt", **self.token_options)
        tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        out = self.model.text_model(**tokens)
        return self.model.text_projection(out.pooler_output)

    @abstractmethod
    def read_logit_scale(self) -> float:
        """exp(logit scale) of the model: the factor of its cosine similarities."""

    @abstractmethod
    def embed_units(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of units on the device → (L2-normalised embeddings (B, P), features (B, F))."""

    def setup(self) -> None:
        """Finish construction (set ``dim``)."""

    def scores(self, embeddings: torch.Tensor) -> torch.Tensor:
        """exp(logit scale) · cos(unit, class prompt): (B, C)."""
        return self.logit_scale * embeddings.float() @ self.text.T

    def gpu_batch(self) -> int:
        """The batch for ``batch_size: auto`` on CUDA: forward passes of one and two zero units
        measure the peak memory per unit, which :func:`batch_for_memory` fits into the GPU's free
        memory. **Untested**: no GPU was available when it was written."""
        device = self.device
        peaks = []
        for count in (1, 2):
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            self.forward(torch.zeros((count, *self.unit_shape)))
            torch.cuda.synchronize(device)
            peaks.append(torch.cuda.max_memory_allocated(device) - before)
        free, _ = torch.cuda.mem_get_info(device)
        return batch_for_memory(free, *peaks)

    def forward(self, units: torch.Tensor) -> np.ndarray:
        """One batch → (B, C + F) float32 rows: each unit's class scores, then its features."""
        with torch.inference_mode():
            x = units.to(self.device, non_blocking=True).float()
            emb, feats = self.embed_units(x)
            return torch.cat([self.scores(emb), feats.float()], dim=1).cpu().numpy()

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "logit_scale": repr(self.logit_scale)}

    @staticmethod
    def normalised(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(x.float(), dim=-1)
