"""Label denoising: methods that change the per-modality training targets of weak labels.

A weak label says that an event class occurs in a video, not in which modality. Label-denoising
methods decide, per (video, class), which modality labels to drop (set to a hard 0 target) before
or while a model trains on them. Two kinds share one set of tables and reports:

* **static** methods compute the refined labels once, from a trained base model, before a model
  is retrained on them: ``estimate(model, video_ids, classes, labels, audio, frame, clip,
  settings, run_seed, progress) -> LabelResult``. Member: ``exchange``, MA's exchange-based
  estimation (:mod:`avvp.stages.refine.exchange`);
* **dynamic** methods drop labels batch by batch while the model trains: a class built as
  ``cls(ratios, n_classes, settings)`` whose instances :func:`avvp.stages.train.run_epoch` calls before
  every step (``start_epoch``, ``__call__`` → new audio / visual targets, ``end_epoch``, and
  ``state`` / ``load_state`` / ``write`` for resume and the drop record). Member: ``jomold``,
  JoMoLD's joint-modal denoising (:mod:`avvp.stages.refine.jomold`), driven by per-class
  noise ratios (:mod:`avvp.stages.refine.ratios`: JoMoLD's estimator, MA's drops, or the truth).

Shared by all members: the refined-labels table (:mod:`avvp.core.refined_labels`; a dynamic method's
drops of one epoch form one, :mod:`avvp.stages.refine.drops`), the official file formats
(:mod:`avvp.stages.refine.official`: MA's ``need_to_change.pkl``, JoMoLD's ``noise_ratios.npz``) and the
quality report against the true per-modality labels (:mod:`avvp.stages.refine.quality`). The command-line
stages are in :mod:`avvp.stages.refine.stages`.

Adding a method: a module here implementing one of the two interfaces, and an entry in
:data:`METHODS`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from avvp.infra.errors import ConfigError


@dataclass(frozen=True)
class Method:
    """A registered label-denoising method.

    Attributes:
        name: the registry name.
        kind: ``static`` or ``dynamic``.
        module: its module in this package.
        entry: the function (static: ``estimate``-like) or class (dynamic) in that module.
        description: one line.
    """

    name: str
    kind: str
    module: str
    entry: str
    description: str

    def load(self) -> Any:
        """The implementation (imports its module)."""
        return getattr(importlib.import_module(f"{__name__}.{self.module}"), self.entry)


METHODS: dict[str, Method] = {
    "exchange": Method("exchange", "static", "exchange", "refine",
                       "MA: exchange-based modality-aware estimation, once, from a trained base model"),
    "jomold": Method("jomold", "dynamic", "jomold", "JointModalDenoiser",
                     "JoMoLD: joint-modal denoising per batch, driven by per-class noise ratios"),
}


def get_method(name: str, kind: str | None = None) -> Method:
    """The registry entry ``name`` (of ``kind`` if given); ConfigError naming the known ones."""
    method = METHODS.get(name)
    if method is None or (kind is not None and method.kind != kind):
        known = [m.name for m in METHODS.values() if kind is None or m.kind == kind]
        what = f"{kind} " if kind else ""
        raise ConfigError(f"unknown {what}label-denoising method {name!r} (known: {', '.join(known)})")
    return method


def dynamic_method_names() -> list[str]:
    """The registered dynamic methods."""
    return [m.name for m in METHODS.values() if m.kind == "dynamic"]
