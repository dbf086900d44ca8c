"""Feature roles: the named feature stores (``features/<role>.h5``) models read.

Light on purpose (no torch): the workflow's DAG is built from these names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from avvp import layout
from avvp.settings import default

#: The three standard roles (HAN's inputs): VGGish audio, 2-D frame and 3-D clip features.
FEATURE_ROLES = ("audio", "frame", "clip")
#: The stores of VALOR's teachers (extracted only when asked for, ``features.teachers``).
TEACHER_ROLES = ("clip_image", "clap_audio")
#: Modality -> the role of VALOR's teacher for it (its store also holds the class ``scores``).
TEACHER_OF = {"audio": "clap_audio", "visual": "clip_image"}
#: Input slot -> feature role, for models that declare none (HAN).
STANDARD_ROLES = {role: role for role in FEATURE_ROLES}


def model_roles(model: Mapping[str, Any]) -> dict[str, str]:
    """Input slot (audio, frame, clip) -> the feature role a model of config section ``model``
    reads there (VALOR may read ``model.audio_role`` / ``model.frame_role``)."""
    m = dict(model)
    if m.get("arch", default("model.arch")) != "valor":
        return dict(STANDARD_ROLES)
    return {"audio": m.get("audio_role", default("model.audio_role")),
            "frame": m.get("frame_role", default("model.frame_role")), "clip": "clip"}


def store_file(features_dir: str | Path, role: str) -> Path:
    """The store of ``role`` in a features folder (``<dir>/<role>.h5``, the results layout's
    name; readers of frames use :func:`avvp.core.pooled_store.frame_store`)."""
    return Path(features_dir) / Path(layout.fill(layout.FEATURE_STORE, role=role)).name
