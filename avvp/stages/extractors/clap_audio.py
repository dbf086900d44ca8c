"""VALOR's audio teacher: LAION-CLAP (HTS-AT fusion) class scores per 1-s segment and the token map
of the whole clip.

The audio is decoded mono (channel mean) at 48 kHz. Each clip gives T + 1 model inputs of
480,000 samples (see :mod:`avvp.stages.teachers.audio`): its T one-second segments, each round-tripped
through int16 and repeated to 10 s, for the scores; and the whole window, forced to 480,000
samples by nearest-index selection and round-tripped through int16, for the features. Each input
becomes a (1001, 64) log-mel spectrogram, the fusion model's global branch (the only one used when
no input is longer than 10 s; the three local copies VALOR stacks beside it are never read) and
its final Swin layer after its LayerNorm.

Stored per video: ``features`` (64, 768), the whole clip's token map (row f·32 + j = frequency
half f, time step j of 32), and ``scores`` (T, 25): exp(logit_scale_a) · ⟨audio, text⟩ for each
segment with the L2-normalised projected embeddings and the 25 texts "This is a sound of <class>"
of :mod:`avvp.stages.teachers.prompts` (the factor is read from the checkpoint).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from avvp.infra.errors import InputError
from avvp.stages.teachers import audio as A
from avvp.stages.teachers.models import Teacher, load_clap
from avvp.stages.teachers.prompts import clap_prompts
from avvp.stages.extractors import register_extractor
from avvp.stages.extractors.teacher import TeacherExtractor

#: CLAP's text inputs are padded (and cut) to this many tokens.
TEXT_TOKENS = 77


def clap_inputs(samples: np.ndarray, segments: int) -> np.ndarray:
    """(segments + 1, 480000) float32: each 1-s segment int16-round-tripped and repeat-padded, then
    the whole signal resampled by nearest index and int16-round-tripped."""
    rows = [A.repeat_pad(A.int16_round_trip(samples[a:b])) for a, b in A.segment_windows(len(samples), segments)]
    rows.append(A.int16_round_trip(A.nearest_resample(samples)))
    return np.stack(rows)


@register_extractor("clap_htsat_fusion")
class ClapAudioExtractor(TeacherExtractor):
    """CLAP scores per second and the whole clip's (64, 768) token map (settings: weights,
    text_encoder, seed)."""

    role = "clap_audio"
    stream = "audio"
    unit_shape = (A.CLIP_SAMPLES,)
    sample_rate = A.SAMPLE_RATE
    prompts = clap_prompts()
    token_options = {"padding": "max_length", "max_length": TEXT_TOKENS, "truncation": True}
    defaults = {"extractor": "clap_htsat_fusion", "weights": "lukewys/laion_clap/630k-fusion-best.pt",
                "text_encoder": None, "seed": 0}

    def load_teacher(self) -> Teacher:
        return load_clap(self.settings["weights"], self.settings["text_encoder"], self.settings["seed"])

    def setup(self) -> None:
        self.dim = int(self.model.config.audio_config.hidden_size)
        self.mel = A.LogMel().to(self.device)

    def read_logit_scale(self) -> float:
        return self.model.logit_scale_a.exp().item()

    def units(self, duration: float) -> int:
        return self.segments(duration) + 1

    def units_from(self, streams, path: str | Path, duration: float) -> torch.Tensor:
        samples = streams.need_audio().samples
        if len(samples) < self.segments(duration):
            raise InputError(path, f"{len(samples)} audio samples cannot make {self.segments(duration)} segments")
        return torch.from_numpy(clap_inputs(samples, self.segments(duration)))

    def embed_units(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mel = self.mel(x).unsqueeze(1)  # (B, 1, 1001, 64): the fusion model's global channel
        longer = torch.zeros((len(x), 1), dtype=torch.bool, device=x.device)
        with self.engine.autocast():
            out = self.model.audio_model(input_features=mel, is_longer=longer)
            emb = self.model.audio_projection(out.pooler_output)
        return self.normalised(emb), A.token_map(out.last_hidden_state.float()).flatten(1)

    def assemble(self, rows: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        t = len(rows) - 1
        features = rows[t, self.classes:].reshape(-1, self.dim)
        return features, {"scores": rows[:t, :self.classes]}
