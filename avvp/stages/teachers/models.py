"""Loading the teachers (transformers' ``CLIPModel`` and ``ClapModel``) offline, with clear errors.

A teacher's ``weights`` setting is one of

* ``none``: a randomly initialised model of the real size (ViT-L/14; HTS-AT-tiny fusion +
  RoBERTa-base), seeded, with a character-code stand-in tokenizer: for benchmarks only, its
  scores mean nothing;
* a local transformers model folder (``config.json`` + ``model.safetensors`` or
  ``pytorch_model.bin``, plus the tokenizer files), as ``save_pretrained`` writes it;
* a Hugging Face hub id (``openai/clip-vit-large-patch14``) already in the hub cache
  (``$HF_HOME``); nothing is downloaded (offline, like ``HF_HUB_OFFLINE=1``);
* CLAP only: LAION-CLAP's original checkpoint file (``630k-fusion-best.pt``), mapped key by key
  into ``ClapModel``; its tokenizer then comes from ``text_encoder`` (default: ``roberta-base``
  from the hub cache; or a folder: only its ``vocab.json`` and ``merges.txt`` are used, the text
  tower's weights are in the checkpoint).

``text_encoder`` (default: the weights folder) names where the tokenizer is read from. A missing
file or folder raises :class:`~avvp.infra.errors.MissingWeightsError`; a file of another model (a CLAP
checkpoint given to CLIP, a non-fusion CLAP checkpoint) or a tokenizer that does not fit the text
tower raises :class:`~avvp.infra.errors.InputError` naming the file and the problem.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from avvp.infra.provenance import sha256
from avvp.infra.errors import InputError, MissingWeightsError
from avvp.infra.weights import seeded
from avvp.stages.teachers.clap_keys import load_converted, read_laion_checkpoint

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CLIP_HUB_ID = "openai/clip-vit-large-patch14"
CLAP_CHECKPOINT = "630k-fusion-best.pt"
ROBERTA_HUB_ID = "roberta-base"
#: CLIP ViT-L/14 (vision 1024-d × 24 layers, patch 14, 224 px; text 768-d × 12; projection 768).
CLIP_L14 = {"projection_dim": 768,
            "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                              "num_attention_heads": 16, "patch_size": 14, "image_size": 224},
            "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                            "num_attention_heads": 12}}
#: LAION-CLAP fusion: HTS-AT-tiny with attentional feature fusion, RoBERTa-base text (the defaults,
#: except the text tower's LayerNorm epsilon: LAION-CLAP builds it from roberta-base's config,
#: 1e-5, where ``ClapTextConfig`` defaults to 1e-12).
ROBERTA_LAYER_NORM_EPS = 1e-5
CLAP_FUSION = {"audio_config": {"enable_fusion": True, "fusion_type": "aff_2d"},
               "text_config": {"layer_norm_eps": ROBERTA_LAYER_NORM_EPS}}


@dataclass
class Teacher:
    """A loaded teacher: the model (eval, fp32, CPU), its tokenizer, and what it was loaded from."""

    model: torch.nn.Module
    tokenizer: object
    identity: str
    source: str


class CharTokenizer:
    """Stand-in tokenizer of randomly initialised teachers: one token per character (for timing)."""

    def __init__(self, vocab_size: int, bos: int, eos: int, pad: int):
        self.vocab_size, self.bos, self.eos, self.pad = vocab_size, bos, eos, pad

    def __len__(self) -> int:
        return self.vocab_size

    def __call__(self, texts, padding=True, max_length=None, truncation=False, return_tensors="pt"):
        span = max(self.vocab_size - 4, 1)
        rows = [[self.bos] + [3 + ord(ch) % span for ch in t] + [self.eos] for t in texts]
        width = max_length if padding == "max_length" else max(len(r) for r in rows)
        rows = [r[:width] for r in rows]
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask}


def resolve_folder(spec: str, what: str) -> Path:
    """A local file or folder; else a hub id (``org/name``, ``name``) or a file in a hub repo
    (``org/name/file``) already in the Hugging Face hub cache (never downloaded)."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    parts = spec.split("/")
    if spec.startswith((".", "/", "~")) or not 1 <= len(parts) <= 3 or not all(parts):
        raise MissingWeightsError(path, what)
    from huggingface_hub import hf_hub_download, snapshot_download

    try:
        if len(parts) == 3:
            return Path(hf_hub_download("/".join(parts[:2]), parts[2], local_files_only=True))
        return Path(snapshot_download(spec, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any hub-cache miss (the hub's errors vary by version)
        raise MissingWeightsError(spec, f"{what} (not a local path, and not in the Hugging Face hub "
                                        "cache; place the files there or give a local path)") from exc


def _model_type(folder: Path, what: str) -> str:
    config = folder / "config.json"
    if not config.is_file():
        raise InputError(folder, f"{what}: not a transformers model folder (no config.json)")
    try:
        return str(json.loads(config.read_text()).get("model_type", ""))
    except (OSError, ValueError) as exc:
        raise InputError(config, f"{what}: unreadable config ({exc})") from exc


def _identity(folder: Path) -> str:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return sha256(folder / name)
    raise MissingWeightsError(folder / WEIGHT_FILES[0], "teacher weights")


def _from_pretrained(cls, folder: Path, what: str):
    try:
        return cls.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise InputError(folder, f"{what}: cannot load ({exc})") from exc


def _tokenizer(cls, spec: str | None, default: Path | None, what: str):
    folder = resolve_folder(spec, f"{what} tokenizer") if spec else default
    try:
        return cls.from_pretrained(str(folder), local_files_only=True), folder
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(folder, f"{what}: no usable tokenizer there ({exc})") from exc


def check_text_fit(tokenizer, vocab_size: int, where, what: str) -> None:
    """InputError when the tokenizer's vocabulary is not the text tower's (a text-encoder mismatch)."""
    if len(tokenizer) != vocab_size:
        raise InputError(where, f"text-encoder mismatch: the {what} tokenizer has {len(tokenizer)} tokens, "
                                f"the text tower embeds {vocab_size}")


def _file_kind(path: Path) -> str:
    """What a single weight file holds, for the message of a file given to the wrong teacher."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - only used to word an error
        return "an unreadable or non-torch file"
    keys = obj.get("state_dict", obj) if isinstance(obj, dict) else {}
    names = " ".join(str(k) for k in keys)[:100000]
    if "audio_branch." in names:
        return "a LAION-CLAP checkpoint"
    if "visual." in names or "vision_model." in names:
        return "a CLIP checkpoint in another layout"
    return "a single weight file"


def _random(model_cls, config, seed: int, tokenizer: CharTokenizer) -> Teacher:
    """A seeded, randomly initialised teacher of the real size (timing only)."""
    with seeded(seed):
        model = model_cls(config)
    return Teacher(model.eval(), tokenizer, f"random:{int(seed)}", "random")


def load_clip(spec: str | None, text_encoder: str | None = None, seed: int = 0) -> Teacher:
    """CLIP ViT-L/14 for the visual teacher (see the module docstring for ``spec``)."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    what = "CLIP weights"
    if spec is None or str(spec).strip().lower() in ("", "none", "random"):
        text = CLIPConfig(**CLIP_L14).text_config
        return _random(CLIPModel, CLIPConfig(**CLIP_L14), seed,
                       CharTokenizer(text.vocab_size, text.bos_token_id, text.eos_token_id, text.eos_token_id))
    folder = resolve_folder(str(spec), what)
    if folder.is_file():
        raise InputError(folder, f"{what}: {_file_kind(folder)}, not a transformers CLIP model folder "
                                 f"(e.g. the hub cache's {CLIP_HUB_ID})")
    kind = _model_type(folder, what)
    if kind != "clip":
        raise InputError(folder, f"{what}: a {kind or 'unknown'} model, not CLIP")
    model = _from_pretrained(CLIPModel, folder, what)
    tokenizer, where = _tokenizer(CLIPTokenizer, text_encoder, folder, "CLIP")
    check_text_fit(tokenizer, model.config.text_config.vocab_size, where, "CLIP")
    return Teacher(model.eval(), tokenizer, _identity(folder), str(folder))


def load_clap(spec: str | None, text_encoder: str | None = None, seed: int = 0) -> Teacher:
    """LAION-CLAP HTS-AT fusion for the audio teacher (see the module docstring for ``spec``)."""
    from transformers import ClapConfig, ClapModel, RobertaTokenizer

    what = "CLAP weights"
    if spec is None or str(spec).strip().lower() in ("", "none", "random"):
        text = ClapConfig(**CLAP_FUSION).text_config
        return _random(ClapModel, ClapConfig(**CLAP_FUSION), seed,
                       CharTokenizer(text.vocab_size, 0, 2, text.pad_token_id))
    path = resolve_folder(str(spec), what)
    if path.is_file():
        converted = read_laion_checkpoint(path)
        model = ClapModel(ClapConfig(**CLAP_FUSION))
        load_converted(model, converted, path)
        tokenizer, where = _tokenizer(RobertaTokenizer, text_encoder or ROBERTA_HUB_ID, None, "CLAP")
        identity, source = sha256(path), str(path)
    else:
        kind = _model_type(path, what)
        if kind != "clap":
            raise InputError(path, f"{what}: a {kind or 'unknown'} model, not CLAP")
        model = _from_pretrained(ClapModel, path, what)
        if not model.config.audio_config.enable_fusion:
            raise InputError(path, f"{what}: a non-fusion CLAP model; VALOR's teacher is the fusion model "
                                   f"({CLAP_CHECKPOINT})")
        tokenizer, where = _tokenizer(RobertaTokenizer, text_encoder, path, "CLAP")
        identity, source = _identity(path), str(path)
    check_text_fit(tokenizer, model.config.text_config.vocab_size, where, "CLAP")
    return Teacher(model.eval(), tokenizer, identity, source)
