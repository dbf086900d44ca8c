"""The shared shape of every extractor: decoded streams → model input units → a batch's features.

An extractor turns one clip into ``units``: a CPU tensor whose first axis holds the items the model
sees one by one (VGGish examples, frames, 8-frame clips). It says which stream it needs
(:meth:`Extractor.request`: the audio at 16 kHz, or 8T frames at 8 fps), so one decode of a clip
(:func:`avvp.stages.decoding.decode_streams`) can serve the three roles; :meth:`Extractor.units_from`
turns the decoded streams into units and :meth:`Extractor.load` does both for one clip. The runner
(:mod:`avvp.stages.extraction`) batches units across videos and calls :meth:`Extractor.forward`, which
returns one D-dimensional row per unit (the network runs through :class:`~.engine.Engine`). A
video's rows, in order, are its (T_r, D) features.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Mapping

import numpy as np
import torch
from torch import nn

from avvp import __version__
from avvp.infra.errors import InputError
from avvp.settings import default as setting_default
from avvp.settings import merge_settings
from avvp.infra.weights import load_into, resolve_weights, seeded
from avvp.stages.extractors.engine import Engine, check_engine, check_precision

if TYPE_CHECKING:
    from avvp.stages.decoding import Streams

#: ImageNet and Kinetics-400 normalisation (those of the official frame and clip features).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)

#: Keys every extractor's settings have (besides its own ``defaults``).
COMMON_DEFAULTS = {"precision": "fp32"}

#: Default ``audio_tolerance`` (``features.audio_tolerance`` of the settings definition): how much
#: of a window (s) an audio stream may leave uncovered; the gap is filled with silence and
#: recorded, a longer one is a failure.
AUDIO_TOLERANCE_S = setting_default("features.audio_tolerance")
#: Default ``audio_min_coverage`` (``features.audio_min_coverage``): the share of a window an audio
#: stream must cover at least. A shortfall beyond ``audio_tolerance`` but within this keeps the
#: video: its audio is padded with silence and flagged (severity ``degraded``); only audio
#: covering less fails the video, whose visual features would otherwise be lost with it.
AUDIO_MIN_COVERAGE = setting_default("features.audio_min_coverage")
#: Audio padding (s) below this is codec rounding: recorded (``padded_s``) but not warned about.
AUDIO_PAD_NOTE_S = 0.05


def whole_seconds(duration: float) -> int:
    """The number of whole seconds (segments) in a window of ``duration`` seconds."""
    return int(math.floor(float(duration) + 1e-6))


class Extractor(ABC):
    """Base class: settings, weights, device placement, decoding requests and the batched forward.

    Subclasses set ``role``, ``stream`` (``audio`` or ``video``), ``defaults`` (their config keys),
    optionally ``default_weights_url`` (what ``weights: pretrained`` means) and ``input_ndim``, and
    implement :meth:`build_model` and :meth:`units_from`.

    Args:
        settings: the role section (``extractor``, the extractor's keys, ``precision``).
        device: a torch device (or its name).
        missing_audio: ``error`` or ``silence`` for clips without an audio stream.
        audio_tolerance: seconds of a window the audio may leave uncovered (padded with silence,
            a warning).
        audio_min_coverage: share of the window the audio must cover at least; a shortfall
            beyond ``audio_tolerance`` but within this is padded too (flagged as degraded).
        engine: ``jit`` or ``eager`` (see :mod:`avvp.stages.extractors.engine`).
        batch_size: units per forward pass (``jit`` pads every batch to it).

    Attributes:
        settings: the role settings merged over ``defaults``.
        model: the plain network in eval mode on ``device``.
        engine: what runs it (:class:`~.engine.Engine`).
        dim: the feature size D.
        weights_identity: sha256 of the weight file or ``random:<seed>``.
    """

    role: ClassVar[str] = ""
    stream: ClassVar[str] = "video"
    names: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict] = {}
    default_weights_url: ClassVar[str | None] = None
    #: Model input units per second of clip (8 for frames, 1 for VGGish examples and clips).
    units_per_second: ClassVar[int] = 1
    #: Dimensions of one batch of model input (4: images, 5: videos; channels-last layout).
    input_ndim: ClassVar[int] = 4
    #: What is decoded: audio at ``sample_rate`` (Hz), or frames at ``fps`` (``ffmpeg -r``).
    sample_rate: ClassVar[int] = 16000
    fps: ClassVar[int] = 8

    def __init__(self, settings: Mapping, device: str | torch.device = "cpu",
                 missing_audio: str = "error", audio_tolerance: float = AUDIO_TOLERANCE_S,
                 engine: str = "jit", batch_size: int | None = None,
                 audio_min_coverage: float = AUDIO_MIN_COVERAGE):
        self.configure(settings, device, missing_audio, audio_tolerance, engine, audio_min_coverage)
        self.dim = 0
        self.head_prefixes: tuple[str, ...] = ()
        # settings: the extractor's own default (a teacher's settings have no seed)
        weights = resolve_weights(self.settings.get("weights"), self.settings.get("seed", 0),
                                  self.weights_url(), what=f"{self.settings['extractor']} weights")
        with seeded(self.settings.get("seed", 0)):  # settings: the extractor's own default
            model = self.build_model()
        if weights.state_dict is not None:
            load_into(model, weights.state_dict, weights.source, self.head_prefixes)
        self.weights_identity = weights.identity
        model.eval().requires_grad_(False)
        self.model = model.to(self.device)
        self.engine = Engine(self.model, self.device, self.settings["precision"], engine, self.input_ndim,
                             batch_size)

    def configure(self, settings: Mapping, device, missing_audio: str, audio_tolerance: float,
                  engine: str, audio_min_coverage: float = AUDIO_MIN_COVERAGE) -> None:
        """Merge and check the settings; set the device and the audio options."""
        self.settings = merge_settings(self.all_defaults(), settings, where=f"features.{self.role}")
        check_engine(engine, f"features.{self.role}")
        check_precision(self.settings["precision"], f"features.{self.role}")
        self.device = torch.device(device)
        self.missing_audio = missing_audio
        self.audio_tolerance = float(audio_tolerance)
        self.audio_min_coverage = float(audio_min_coverage)

    @classmethod
    def all_defaults(cls) -> dict:
        """Every setting key of this extractor with its default."""
        return {**cls.defaults, **COMMON_DEFAULTS}

    # -- to implement -----------------------------------------------------------------------
    @abstractmethod
    def build_model(self) -> nn.Module:
        """Build the headless network (random init); set ``self.dim`` and ``self.head_prefixes``
        (state-dict prefixes of a classifier that weight files may hold and that is not used)."""

    @abstractmethod
    def units_from(self, streams: Streams, path: str | Path, duration: float) -> torch.Tensor:
        """The CPU model units (first axis: units) of one clip from its decoded streams.

        Raises:
            avvp.infra.errors.InputError: (incl. DecodeError) the stream this extractor needs could not
                be decoded or gives too few units; the runner records it as this role's failure.
        """

    def weights_url(self) -> str | None:
        """What ``weights: pretrained`` means for this extractor (None: no standard file)."""
        return self.default_weights_url

    def prepare(self, units: torch.Tensor) -> torch.Tensor:
        """Turn a batch of units already on the device into the model input (e.g. normalise)."""
        return units.float()

    def assemble(self, rows: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One video's (units, D) forward rows → its stored (T, D) features and any extra
        per-video arrays stored beside them (name → array; e.g. a teacher's class scores)."""
        return rows, {}

    def postprocess(self, output: torch.Tensor) -> torch.Tensor:
        """Change the model's (B, D) output before it is stored (e.g. VGGish PCA)."""
        return output

    # -- shared ---------------------------------------------------------------------------------
    def segments(self, duration: float) -> int:
        """T: the number of whole seconds of the window."""
        return whole_seconds(duration)

    def units(self, duration: float) -> int:
        """How many units (and output rows) one clip of ``duration`` seconds gives."""
        return self.segments(duration) * self.units_per_second

    def request(self, duration: float) -> dict:
        """What :func:`avvp.stages.decoding.decode_streams` must decode for a window of ``duration`` s
        (its keyword arguments)."""
        if self.stream == "audio":
            return {"audio": True, "video": False, "sample_rate": self.sample_rate,
                    "missing": self.missing_audio, "audio_tolerance": self.audio_limit(duration)}
        return {"audio": False, "video": True, "fps": float(self.fps),
                "n_frames": self.segments(duration) * self.fps}

    def audio_limit(self, duration: float) -> float:
        """Seconds of a ``duration``-s window the audio may leave uncovered before the clip fails:
        ``audio_tolerance``, or more where ``audio_min_coverage`` allows more."""
        return max(self.audio_tolerance, (1.0 - self.audio_min_coverage) * float(duration))

    def load(self, path: str | Path, duration: float, start: float = 0.0) -> torch.Tensor:
        """Decode ``[start, start + duration)`` of one clip into its CPU model units.

        ``start`` is 0 for clips already cut to their window (the demo's, the official download's)
        and the window start for full source videos (``avvp download``).

        Raises:
            avvp.infra.errors.InputError: (incl. DecodeError) the clip cannot be used.
        """
        from avvp.stages.decoding import decode_streams

        if self.units(duration) <= 0:
            raise InputError(path, f"window of {duration:g} s holds no whole second")
        streams = decode_streams(path, start, start + duration, **self.request(duration))
        return self.checked_units(streams, path, duration)

    def checked_units(self, streams: Streams, path: str | Path, duration: float) -> torch.Tensor:
        """:meth:`units_from`, checked to give exactly :meth:`units` units."""
        units = self.units_from(streams, path, duration)
        need = self.units(duration)
        if len(units) != need:
            raise InputError(path, f"decoded {len(units)} {self.role} model inputs, expected {need}")
        return units

    def forward(self, units: torch.Tensor) -> np.ndarray:
        """Run one batch of units through the model; returns (B, D) float32 on the CPU."""
        with torch.inference_mode():
            x = self.prepare(units.to(self.device, non_blocking=True))
            y = self.postprocess(self.engine(x).flatten(1))
            return y.float().cpu().numpy()

    def describe(self) -> dict[str, str]:
        """Feature-store attributes: role, extractor, settings (JSON), weights, avvp version.

        Audio extractors' settings also record ``missing_audio`` and ``audio_tolerance`` (they change
        what is stored)."""
        settings = dict(self.settings)
        if self.stream == "audio":
            settings["missing_audio"] = self.missing_audio
            settings["audio_tolerance"] = self.audio_tolerance
            settings["audio_min_coverage"] = self.audio_min_coverage
        return {
            "role": self.role,
            "extractor": str(self.settings["extractor"]),
            "settings": json.dumps(settings, sort_keys=True, separators=(",", ":")),
            "weights": self.weights_identity,
            "avvp_version": __version__,
        }


def normaliser(mean, std, ndim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and shift that turn uint8 pixel values v into (v / 255 − mean) / std as
    ``v · scale − shift``, shaped to broadcast over (B, 3, H, W) or (B, 3, T, H, W) on ``device``."""
    shape = (1, 3) + (1,) * (ndim - 2)
    mean = torch.tensor(mean, dtype=torch.float64)
    std = torch.tensor(std, dtype=torch.float64)
    scale, shift = 1.0 / (255.0 * std), mean / std
    return (scale.to(torch.float32).view(shape).to(device), shift.to(torch.float32).view(shape).to(device))


def normalise_pixels(units: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, ...) pixels → normalised float32 in channels-last layout (one conversion
    pass, then the affine map in place)."""
    from avvp.stages.extractors.engine import memory_format

    x = units.to(torch.float32, memory_format=memory_format(units.dim()))
    return x.mul_(scale).sub_(shift)

