"""Where a model's weights come from, and a short identity string recorded beside its outputs.

A weight setting (``weights:`` in the config) is one of

* ``none``: seeded random initialisation (the demo and the tests; identity ``random:<seed>``);
* ``pretrained``: the model's standard published file (its URL), fetched through the torch hub
  cache like any other URL;
* a URL (``http(s)://``, ``file://``): loaded with :func:`torch.hub.load_state_dict_from_url`, which
  keeps the file in the hub cache (``$TORCH_HOME/hub/checkpoints``) and reuses it offline;
* a local file (a ``torch.save`` state dict, or a checkpoint holding one under ``state_dict`` /
  ``model``), or the bare name of a file already in the hub cache.

The identity of loaded weights is the sha256 of the file, so two feature stores made with the same
weights can be recognised as such. A configured file that does not exist raises
:class:`~avvp.infra.errors.MissingWeightsError` naming it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping
from urllib.parse import urlparse

import torch

from avvp.infra.provenance import sha256
from avvp.infra.errors import ConfigError, InputError, MissingWeightsError

log = logging.getLogger(__name__)

URL_SCHEMES = ("http", "https", "file", "ftp")
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")


@dataclass
class Weights:
    """Resolved weights: the state dict (None for random init) and its identity string."""

    state_dict: dict[str, torch.Tensor] | None
    identity: str
    source: str


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the body with torch's CPU random generator seeded, restoring the outer state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def is_url(spec: str) -> bool:
    """True when ``spec`` looks like a URL that torch.hub can fetch."""
    return urlparse(str(spec)).scheme in URL_SCHEMES


def hub_cache_file(url_or_name: str) -> Path:
    """The path a URL (or a bare file name) has in the torch hub checkpoint cache."""
    name = os.path.basename(urlparse(url_or_name).path) if is_url(url_or_name) else url_or_name
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def resolve_weights(spec: str | None, seed: int = 0, default_url: str | None = None,
                    what: str = "weights") -> Weights:
    """Resolve a weight setting to a state dict (or None for seeded random init) and its identity.

    Args:
        spec: ``none``, ``pretrained``, a URL, a local file or a file name in the hub cache.
        seed: the seed of random initialisation (only recorded here; see :func:`seeded`).
        default_url: what ``pretrained`` means for this model.
        what: a short description used in messages (e.g. "vggish weights").

    Raises:
        MissingWeightsError: a configured file is missing, or a URL could not be fetched.
        ConfigError: ``pretrained`` for a model without a standard file.
    """
    if spec is None or str(spec).strip().lower() in ("", "none", "random"):
        return Weights(None, f"random:{int(seed)}", "random")
    spec = str(spec).strip()
    if spec.lower() == "pretrained":
        if not default_url:
            raise ConfigError(f"{what}: 'pretrained' has no standard file for this model; "
                              "give a local file or a URL")
        spec = default_url
    if is_url(spec):
        return _from_url(spec, what)
    path = Path(spec).expanduser()
    if not path.exists() and os.sep not in spec and hub_cache_file(spec).exists():
        path = hub_cache_file(spec)
    if not path.is_file():
        raise MissingWeightsError(path, what)
    return Weights(load_state_dict_file(path), sha256(path), str(path))


def _from_url(url: str, what: str) -> Weights:
    cached = hub_cache_file(url)
    try:
        state = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True,
                                                   weights_only=True)
    except (OSError, ValueError) as exc:  # URLError is an OSError
        raise MissingWeightsError(url, f"{what}: could not fetch ({exc}) and no copy at {cached};"
                                       " weights") from exc
    return Weights(unwrap_state_dict(state, url), sha256(cached) if cached.exists() else f"url:{url}", url)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from a ``torch.save`` file (or a checkpoint that wraps one)."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is bad input
        raise InputError(path, f"cannot read as a torch weight file: {exc}") from exc
    return unwrap_state_dict(obj, path)


def unwrap_state_dict(obj, where) -> dict[str, torch.Tensor]:
    """The tensor mapping inside ``obj``: itself, or under a usual wrapper key; strips ``module.``."""
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(where, "does not hold a state dict (a mapping of names to tensors)")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def load_into(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str,
              ignore_prefixes: tuple[str, ...] = ()) -> None:
    """Load ``state_dict`` into ``model`` strictly, except keys under ``ignore_prefixes`` (a head).

    Raises:
        InputError: names the file and the missing, unexpected or mis-shaped keys.
    """
    def kept(key: str) -> bool:
        return not any(key.startswith(p) for p in ignore_prefixes)

    state = {k: v for k, v in state_dict.items() if kept(k)}
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    shapes = sorted(f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
                    for k in state if k in own and state[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                            ("wrong shapes", shapes)):
            if keys:
                more = f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""
                parts.append(f"{label}: {', '.join(keys[:5])}{more}")
        raise InputError(source, "weights do not fit the model; " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
