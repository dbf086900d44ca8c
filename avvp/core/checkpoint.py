"""Model files: official ``MMIL_Net`` state dicts (HAN and MA) and avvp's own model and resume files.

* An **official checkpoint** is the plain ``state_dict()`` of the official HAN or MA ``MMIL_Net``
  (keys in ``shared/spec/official_*_state_dict.tsv``). Its dead modules (``audio_encoder``,
  ``visual_encoder``, ``cmt_encoder``, the encoders' own norms, MA's ``t_att``/``t_att2``/``fc1``/
  ``fc2``) are dropped; ``hat_encoder.layers.0.*`` becomes ``han.*``; the feature sizes are read
  from the weight shapes.
* An **avvp model file** is a dict ``{"format": "avvp-han", "version", "config", "classes",
  "state_dict", "meta"}``.
* An **official JoMoLD checkpoint** (``noise_estimater.pt`` or ``JoMoLD.pt``) is
  a dict ``{torch_rng, cuda_rng, random_rng, numpy_rng, model, optimizer, scheduler, epochs}``;
  its ``model`` is a HAN state dict of 34 keys, all among the official HAN's (no dead
  encoders), converted as above.
* An **official VALOR checkpoint** (a released ``checkpoint_best.pt``) is the plain state dict of
  VALOR's network, told from HAN's by its ``hat_encoder.final_norm_a``; see
  :mod:`avvp.core.valor.checkpoint`. An avvp VALOR model file has ``"format": "avvp-valor"``.
* A **resume file** (``checkpoints/last.pt``) holds the whole training state; see
  :mod:`avvp.stages.train`.

Every file is read with ``torch.load(..., weights_only=True)``, which unpickles no arbitrary
object: besides tensors and plain Python values it admits only NumPy arrays and dtypes
(:data:`SAFE_GLOBALS`, for the NumPy random state in JoMoLD's checkpoints). Files are written
atomically.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from avvp.infra import provenance
from avvp.infra.atomic import atomic_path
from avvp.infra.errors import InputError, MissingWeightsError
from avvp.core.model import HAN, HANConfig
from avvp.core.valor import checkpoint as valor_ckpt

FORMAT = "avvp-han"
#: The format of an avvp model file holding a VALOR model.
VALOR_FORMAT = "avvp-valor"
VERSION = 1

#: Official key prefix of the one HAN layer, and ours.
OFFICIAL_HAN_PREFIX = "hat_encoder.layers.0."
HAN_PREFIX = "han."
#: Modules of the official MMIL_Net that its forward pass never uses (HAN and MA).
UNUSED_PREFIXES = ("audio_encoder.", "visual_encoder.", "cmt_encoder.", "hat_encoder.norm1.",
                   "hat_encoder.norm2.", "t_att.", "t_att2.", "fc1.", "fc2.")
#: Top-level keys of an official JoMoLD checkpoint; the state dict is ``model``.
JOMOLD_KEYS = frozenset({"torch_rng", "cuda_rng", "random_rng", "numpy_rng", "model", "optimizer",
                         "scheduler", "epochs"})
#: JoMoLD's visual dropout, given to models built from its checkpoints.
JOMOLD_VISUAL_DROPOUT = 0.5
_RECONSTRUCT = np._core.multiarray._reconstruct
#: The only globals besides torch's own that checkpoints may reference: NumPy arrays and dtypes
#: (``numpy_rng`` is ``np.random.get_state()``: a uint32 array), under NumPy 2's and 1's names.
SAFE_GLOBALS = [_RECONSTRUCT, (_RECONSTRUCT, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype,
                np.dtypes.UInt32DType]


def _official_key(key: str) -> str:
    return OFFICIAL_HAN_PREFIX + key[len(HAN_PREFIX):] if key.startswith(HAN_PREFIX) else key


def official_sizes(state: Mapping[str, torch.Tensor], source: str | Path | None = None,
                   kind: str = "HAN") -> dict:
    """Model sizes (a :class:`HANConfig` dict without nhead/dropout) read from an official state
    dict (HAN's or, ``kind`` naming it in errors, VALOR's: the same first layer and heads)."""
    needed = ("fc_a.weight", "fc_v.weight", "fc_st.weight", "fc_prob.weight",
              OFFICIAL_HAN_PREFIX + "linear1.weight")
    missing = [k for k in needed if k not in state]
    if missing:
        raise InputError(source, f"not a {kind} checkpoint: missing key(s) " + ", ".join(missing))
    for k in needed:
        if getattr(state[k], "ndim", None) != 2:
            raise InputError(source, f"not a {kind} checkpoint: {k} has shape "
                                     f"{tuple(getattr(state[k], 'shape', ()))}, expected a matrix")
    return {
        "audio_dim": int(state["fc_a.weight"].shape[1]),
        "frame_dim": int(state["fc_v.weight"].shape[1]),
        "clip_dim": int(state["fc_st.weight"].shape[1]),
        "n_classes": int(state["fc_prob.weight"].shape[0]),
        "d_model": int(state["fc_a.weight"].shape[0]),
        "dim_feedforward": int(state[OFFICIAL_HAN_PREFIX + "linear1.weight"].shape[0]),
    }


def convert_official(state: Mapping[str, torch.Tensor], source: str | Path | None = None,
                     nhead: int = 1, **config: Any) -> tuple[HANConfig, dict[str, torch.Tensor]]:
    """Map an official HAN/MA/JoMoLD ``MMIL_Net`` state dict onto :class:`HAN`.

    Args:
        state: the official state dict (a ``module.`` prefix from DataParallel is accepted).
        source: the file it came from, for error messages.
        nhead: attention heads (not recorded in a state dict; 1 official).
        config: more :class:`HANConfig` fields (JoMoLD: ``visual_dropout``).

    Returns:
        The model config and our state dict.

    Raises:
        InputError: missing keys, keys of another architecture, or wrong shapes, each named.
    """
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    sizes = official_sizes(state, source)
    try:
        model_config = HANConfig(nhead=nhead, **sizes, **config)
    except ValueError as exc:
        raise InputError(source, f"not a usable HAN checkpoint: {exc}") from None
    expected = HAN.from_config(model_config).state_dict()
    missing = [_official_key(k) for k in expected if _official_key(k) not in state]
    if missing:
        raise InputError(source, "not a HAN checkpoint: missing key(s) " + ", ".join(missing))
    unknown = [k for k in state
               if not k.startswith(UNUSED_PREFIXES)
               and k not in {_official_key(e) for e in expected}]
    if unknown:
        raise InputError(source, "not a HAN checkpoint: unexpected key(s) " + ", ".join(unknown))
    ours = {}
    wrong = []
    for key, ref in expected.items():
        value = state[_official_key(key)]
        if tuple(value.shape) != tuple(ref.shape):
            wrong.append(f"{_official_key(key)} {tuple(value.shape)} (expected {tuple(ref.shape)})")
        ours[key] = value.detach().to(torch.float32).clone()
    if wrong:
        raise InputError(source, "not a HAN checkpoint: wrong shape(s) " + "; ".join(wrong))
    return model_config, ours


def load_official(path: str | Path, nhead: int = 1) -> HAN:
    """Load an official HAN or MA ``MMIL_Net`` checkpoint file into :class:`HAN` (eval mode)."""
    state = _torch_load(path)
    if not _is_state_dict(state):
        raise InputError(path, "not an official checkpoint: expected a state dict of tensors")
    config, ours = convert_official(state, path, nhead)
    model = HAN.from_config(config)
    model.load_state_dict(ours)
    return model.eval()


def save_model(path: str | Path, model: HAN, classes: list[str], meta: Mapping[str, Any] | None = None) -> None:
    """Write an avvp model file atomically.

    Args:
        path: the target (``model.pt``).
        model: the model; its weights are stored on the CPU.
        classes: class names in output order.
        meta: extra JSON-like information (settings, seed, selected epoch, ...).
    """
    if len(classes) != model.config.n_classes:
        raise ValueError(f"{len(classes)} class names for a model with {model.config.n_classes} classes")
    payload = {
        "format": VALOR_FORMAT if model.config.to_dict().get("arch") == "valor" else FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "classes": list(classes),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    save_torch(path, payload)


def load_model(path: str | Path, nhead: int = 1, expect: str | None = None) -> tuple[HAN, dict]:
    """Load an avvp model file, an official HAN/MA state dict, an official JoMoLD checkpoint or a
    released VALOR checkpoint.

    Args:
        nhead: attention heads of an official HAN/MA/JoMoLD file (not recorded in it).
        expect: the VALOR variant the file must be (``valor``, ``valor_plus``, ``valor_pp``), or
            None (any model). A file of another variant, or a HAN file, is an InputError naming
            the file and both.

    Returns:
        The model in eval mode, and a dict with ``classes`` (None for an official file, which
        does not record them), ``meta`` and ``official`` (bool).
    """
    payload = _torch_load(path)
    if isinstance(payload, Mapping) and payload.get("format") == VALOR_FORMAT:
        from avvp.core.valor.model import VALOR, VALORConfig

        try:
            config = VALORConfig.from_dict(payload["config"])
            model = VALOR.from_config(config)
            model.load_state_dict(payload["state_dict"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise InputError(path, f"broken avvp model file: {exc}") from None
        valor_ckpt.check_variant(config, expect, path)
        return model.eval(), _file_info(path, payload, config.n_classes)
    if _is_state_dict(payload) and valor_ckpt.is_valor_state(payload):
        from avvp.core.valor.model import VALOR

        config, ours = valor_ckpt.convert_official(payload, path, expect)
        model = VALOR.from_config(config)
        model.load_state_dict(ours)
        return model.eval(), {"classes": None, "meta": {}, "official": True}
    if expect is not None:
        raise InputError(path, f"not a VALOR model file or checkpoint (declared: {expect}); "
                               "it holds another model (HAN, MA or JoMoLD) or something else")
    if isinstance(payload, Mapping) and payload.get("format") == FORMAT:
        try:
            config = HANConfig(**payload["config"])
            model = HAN.from_config(config)
            model.load_state_dict(payload["state_dict"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise InputError(path, f"broken avvp model file: {exc}") from None
        return model.eval(), _file_info(path, payload, config.n_classes)
    if _is_state_dict(payload):
        config, ours = convert_official(payload, path, nhead)
        model = HAN.from_config(config)
        model.load_state_dict(ours)
        return model.eval(), {"classes": None, "meta": {}, "official": True}
    if isinstance(payload, Mapping) and "model" in payload and set(payload) <= JOMOLD_KEYS:
        if not _is_state_dict(payload["model"]):
            raise InputError(path, "an official JoMoLD checkpoint, but its 'model' is not a state dict of tensors")
        config, ours = convert_official(payload["model"], path, nhead, visual_dropout=JOMOLD_VISUAL_DROPOUT)
        model = HAN.from_config(config)
        model.load_state_dict(ours)
        meta = {"jomold_epochs": payload.get("epochs")} if isinstance(payload.get("epochs"), int) else {}
        return model.eval(), {"classes": None, "meta": meta, "official": True}
    keys = ", ".join(sorted(map(str, payload)))[:200] if isinstance(payload, Mapping) else type(payload).__name__
    raise InputError(path, "neither an avvp model file nor an official HAN/MA state dict nor an official "
                           f"JoMoLD checkpoint (found: {keys})")


def _file_info(path: str | Path, payload: Mapping, n_classes: int) -> dict:
    """``classes``, ``meta`` and ``official`` of an avvp model file; InputError when the class
    names do not fit the model."""
    classes = list(payload.get("classes") or [])
    if len(classes) != n_classes:
        raise InputError(path, f"{len(classes)} class names for {n_classes} model classes")
    return {"classes": classes, "meta": dict(payload.get("meta", {})), "official": False}


def save_torch(path: str | Path, obj: Any) -> None:
    """``torch.save`` atomically; an avvp file (a dict with a ``format``) gets the current
    provenance record (:mod:`avvp.infra.provenance`) under the key ``provenance``."""
    record = provenance.current()
    if record is not None and isinstance(obj, dict) and "format" in obj and provenance.PT_KEY not in obj:
        obj = {**obj, provenance.PT_KEY: record}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # a file object: torch names the archive's root folder after a file name, and the
        # temporary name is random; so the same object gives the same bytes
        torch.save(obj, fh)


def load_torch(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` on the CPU, with errors naming the file."""
    return _torch_load(path)


def _torch_load(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise MissingWeightsError(path, "model")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(path, "cannot read as a torch checkpoint: the file is empty (0 bytes)")
    _check_records(path)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        blocked = re.search(r"unsupported (?:global: )?GLOBAL ([\w.]+)", str(exc), re.IGNORECASE)
        if blocked:
            raise InputError(path, f"cannot read as a torch checkpoint: refused, as it asks to load "
                                   f"the Python object {blocked.group(1)} (code, not model weights), "
                                   "which avvp never unpickles; use checkpoints from a source you "
                                   "trust, in the avvp or official format") from None
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, (EOFError, OSError)) or "zip archive" in reason:
            reason = f"the file is truncated, damaged or not a torch file ({reason})"
        raise InputError(path, f"cannot read as a torch checkpoint: {reason}") from None


def _check_records(path: Path) -> None:
    """A torch file is a zip archive whose records carry CRC-32 checksums, which torch.load does
    not verify: check them, so damaged bytes are an error instead of wrong weights."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise InputError(path, f"cannot read as a torch checkpoint: the file is truncated or damaged "
                               f"({exc})") from None
    if bad is not None:
        raise InputError(path, f"cannot read as a torch checkpoint: the file is damaged (its record "
                               f"{bad} fails its CRC-32 check)")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
