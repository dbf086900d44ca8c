"""The embedded synthetic demo data set: seeded event plans in LLP format, rendered into MP4s.

``plan`` writes the annotation folder (the six LLP CSVs, ``classes.txt``, the true per-modality
labels of the training videos and ``synth_plan.json``); ``render`` turns the plan into clips.
See :mod:`avvp.stages.synth.classes` for the event classes and their signatures.
"""

from __future__ import annotations

from avvp.stages.synth.classes import CATALOGUE, class_names
from avvp.stages.synth.plan import PLAN_FILE, make_plan, read_plan, write_annotations
from avvp.stages.synth.render import render_shard, render_video, write_clip
from avvp.stages.synth.settings import PLAN_KEYS, RENDER_KEYS, resolve

__all__ = [
    "CATALOGUE", "PLAN_FILE", "PLAN_KEYS", "RENDER_KEYS", "class_names", "make_plan",
    "read_plan", "render_shard", "render_video", "resolve", "write_annotations", "write_clip",
]
