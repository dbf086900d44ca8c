"""What a feature store holds: its roles, required and shard attributes, flag datasets, and the
attribute check every writer runs."""

from __future__ import annotations

import json
from typing import Mapping

import h5py

from avvp import __version__
from avvp.infra.errors import InputError
from avvp.core.feature_roles import FEATURE_ROLES, TEACHER_ROLES


#: The three stores of a data set, and the columns of a failure table (``features/failures/``).
ROLES = FEATURE_ROLES
#: Every role ``avvp extract`` can extract.
EXTRACT_ROLES = ROLES + TEACHER_ROLES
FAILURE_COLUMNS = ("video_id", "stage", "reason")
REQUIRED_ATTRS = ("role", "extractor", "settings", "weights")
#: Attributes that must agree between the shards of one store.
IDENTITY_ATTRS = ("role", "extractor", "settings", "weights")
#: Attributes of one shard only (not carried into a merged store).
SHARD_ATTRS = ("shard", "inputs")
#: Optional per-video float datasets a store may hold beside ``features``.
FLAG_DATASETS = ("padded_s",)
#: Dataset names that are not extra per-video arrays.
_RESERVED = ("video_ids", "features", *FLAG_DATASETS)
_STR = h5py.string_dtype("utf-8")


def _attr_text(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _check_attrs(attrs: Mapping, where) -> dict[str, str]:
    missing = [k for k in REQUIRED_ATTRS if k not in attrs]
    if missing:
        raise InputError(where, f"feature store attributes lack {', '.join(missing)}")
    out = {k: _attr_text(v) for k, v in attrs.items()}
    out["avvp_version"] = out.get("avvp_version", __version__)
    return out
