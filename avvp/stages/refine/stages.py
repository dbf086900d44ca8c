"""The command-line stages of label denoising: ``avvp refine``, ``avvp noise-ratios`` and
``avvp drop-quality``.

* :func:`run_refine`: a static method (MA's exchange estimation) → the refined-labels table, with
  its quality report where the truth is known; :func:`import_pkl` / :func:`export_pkl` convert
  the official ``need_to_change.pkl``;
* :func:`run_ratios`: noise ratios for the dynamic method, from one of the sources of
  :mod:`avvp.stages.refine.ratios` → ``ratios.parquet`` (and the official ``noise_ratios.npz``), compared
  with the true ratios where the truth is known;
* :func:`run_drop_quality`: the quality report of a dynamic method's recorded drops.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from avvp.core.checkpoint import load_model
from avvp.core.data import Features, check_dims, load_annotations, load_features, split_ids
from avvp.infra.errors import ConfigError, InputError
from avvp.stages.refine import get_method, quality as Q
from avvp.stages.refine.drops import drop_counts, epoch_tables, read_drops
from avvp.stages.refine.exchange import RefineResult, diagnose, refine_settings
from avvp.stages.refine.official import read_need_to_change, write_need_to_change
from avvp.stages.refine.ratios import SOURCES, NoiseRatios, ratios_from_table, read_ratios, true_ratios, write_npz, write_ratios
from avvp.core.refined_labels import read_table, write_table

log = logging.getLogger(__name__)


def quality_paths(folder: str | Path, stem: str = "quality") -> dict[str, Path]:
    """The quality-report files written into ``folder``: ``<stem>.parquet``, ``.md``, ``.png``."""
    folder = Path(folder)
    return {"parquet": folder / f"{stem}.parquet", "md": folder / f"{stem}.md", "png": folder / f"{stem}.png"}


def _model_and_training_set(model_path: str | Path, features_dir: str | Path, manifest: str | Path,
                            annotations: str | Path | None, progress: bool):
    """(model, annotations, training ids, training features), checked against each other.

    The ids are all the training videos of the manifest, in order; the features hold those that
    have features (``features.video_ids``; the others are left out with a warning).
    """
    ann = load_annotations(manifest, annotations, dense=False)
    ids = split_ids(ann, "train", manifest)
    model, info = load_model(model_path)
    if info["classes"] and list(info["classes"]) != list(ann.classes):
        raise InputError(model_path, "the model's class list differs from the manifest's classes")
    if model.config.n_classes != len(ann.classes):
        raise InputError(model_path, f"the model predicts {model.config.n_classes} classes, "
                                     f"the annotations have {len(ann.classes)}")
    features: Features = load_features(features_dir, ids, progress=progress, missing="skip",
                                       what="training videos")
    check_dims(features, model.config.to_dict(), features_dir)
    return model, ann, ids, features


# ------------------------------------------------------------------------- static methods

def run_refine(model_path: str | Path, features_dir: str | Path, manifest: str | Path, out: str | Path,
               settings: Mapping[str, Any] | None = None, run_seed: int = 0,
               pkl: str | Path | None = None, quality_dir: str | Path | None = None,
               annotations: str | Path | None = None, progress: bool = True,
               method: str = "exchange") -> RefineResult:
    """``avvp refine``: refine the training labels of a data set with a trained base model.

    Args:
        model_path: the base model (an avvp ``model.pt`` or an official state dict).
        features_dir: folder with the merged stores ``audio.h5``, ``frame.h5``, ``clip.h5``.
        manifest: ``manifest.parquet``; its ``train`` videos, in order, are refined.
        out: the refined-labels Parquet table to write.
        settings: the method's settings (``exchange``: config ``refine``).
        run_seed: the experiment's training seed (combined with ``settings.seed`` for partners).
        pkl: also export the drops as the official ``need_to_change.pkl`` here.
        quality_dir: also write the refinement quality (needs the true per-modality training
            labels, ``dense_train_audio.parquet`` / ``dense_train_visual.parquet`` beside the manifest).
        annotations: annotation folder for ``classes.txt`` (default: found beside the manifest).
        progress: show progress bars.
        method: a static method of the registry (:data:`avvp.stages.refine.METHODS`).
    """
    estimate = get_method(method, "static").load()
    s = refine_settings(settings)
    truth = Q.train_truth(manifest) if quality_dir is not None else None
    model, ann, train_ids, features = _model_and_training_set(model_path, features_dir, manifest, annotations,
                                                              progress)
    ids = features.video_ids
    started = time.perf_counter()
    result = estimate(model, ids, ann.classes, ann.weak(ids), features.audio, features.frame, features.clip,
                      s, run_seed, progress)
    seconds = time.perf_counter() - started
    summary = result.summary()
    log.info("refined %d labels of %d videos in %.1f s: %d audio, %d visual dropped (%d both); "
             "%d videos without a partner", summary["labels"], len(ids), seconds, summary["dropped_audio"],
             summary["dropped_visual"], summary["dropped_both"], summary.get("videos_without_partner", 0))
    for message in diagnose(result):
        log.warning("%s: %s", model_path, message)
    write_table(out, result, {"base_model": str(model_path), "run_seed": int(run_seed), "seconds": seconds})
    if pkl is not None:
        write_need_to_change(pkl, result.table, train_ids, ann.classes)
    if quality_dir is not None:
        q = Q.quality(result.table, truth["audio"], truth["visual"], ann.classes)
        paths = quality_paths(quality_dir)
        Q.write_report(q, paths["parquet"], paths["md"], paths["png"],
                       title=f"Refinement quality ({Path(out).parent})")
    return result


def import_pkl(pkl: str | Path, manifest: str | Path, out: str | Path,
               settings: Mapping[str, Any] | None = None, annotations: str | Path | None = None) -> pd.DataFrame:
    """Turn an official ``need_to_change.pkl`` into a refined-labels table (``avvp refine --from-pkl``)."""
    from avvp.infra.atomic import write_parquet

    s = refine_settings(settings)
    ann = load_annotations(manifest, annotations, dense=False)
    ids = split_ids(ann, "train", manifest)
    table = read_need_to_change(pkl, ids, ann.classes, ann.weak(ids), bool(s["alias_global"]))
    table.attrs = {"settings": s, "classes": list(ann.classes), "source": str(pkl)}
    write_parquet(out, table)
    return table


def export_pkl(labels: str | Path, manifest: str | Path, pkl: str | Path,
               annotations: str | Path | None = None) -> None:
    """Write the official ``need_to_change.pkl`` of a refined-labels table (``avvp refine --to-pkl``)."""
    ann = load_annotations(manifest, annotations, dense=False)
    write_need_to_change(pkl, read_table(labels), split_ids(ann, "train", manifest), ann.classes)


# --------------------------------------------------------------------------- noise ratios

def run_ratios(source: str, manifest: str | Path, out: str | Path, *, model: str | Path | None = None,
               features_dir: str | Path | None = None, labels: str | Path | None = None,
               npz: str | Path | None = None, settings: Mapping[str, Any] | None = None,
               run_seed: int = 0, npz_out: str | Path | None = None, quality_dir: str | Path | None = None,
               annotations: str | Path | None = None, progress: bool = True) -> NoiseRatios:
    """``avvp noise-ratios``: the noise ratios of the training set from one source.

    Args:
        source: ``estimator`` (JoMoLD's stage 2: ``model`` and ``features_dir``), ``exchange``
            (the drops of a refined-labels table ``labels``), ``truth`` (the demo's true
            per-modality labels) or ``npz`` (an official ``noise_ratios.npz``, ``npz``).
        manifest: ``manifest.parquet`` (its ``train`` videos).
        out: ``ratios.parquet`` to write.
        settings: config ``ratios`` (:func:`avvp.stages.refine.jomold.ratio_settings`; estimator only).
        run_seed: the experiment's seed (the estimator pass's shuffle).
        npz_out: also export the official ``noise_ratios.npz`` here.
        quality_dir: also compare with the true ratios (``quality.parquet/.md/.png`` here).
        annotations: annotation folder for ``classes.txt``.
        progress: show progress bars.
    """
    from avvp.stages.refine import jomold

    if source not in SOURCES:
        raise ConfigError(f"unknown noise-ratio source {source!r} (known: {', '.join(SOURCES)})")
    needs = {"estimator": ("model", model, "features", features_dir), "exchange": ("labels", labels),
             "npz": ("npz", npz)}.get(source, ())
    for name, value in zip(needs[::2], needs[1::2]):
        if value is None:
            raise ConfigError(f"noise ratios from {source!r} need --{name}")
    s = jomold.ratio_settings(settings)
    truth = Q.train_truth(manifest) if quality_dir is not None or source == "truth" else None
    if source == "estimator":
        est, ann, _, features = _model_and_training_set(model, features_dir, manifest, annotations, progress)
        ids = features.video_ids
        ratios = jomold.estimate_ratios(est, ids, ann.classes, ann.weak(ids), features.audio, features.frame,
                                        features.clip, s, run_seed, progress)
        ratios.attrs["model"] = str(model)
    else:
        ann = load_annotations(manifest, annotations, dense=False)
        ids = split_ids(ann, "train", manifest)
        if source == "exchange":
            ratios = ratios_from_table(read_table(labels), ids, ann.classes, ann.weak(ids), labels)
        elif source == "truth":
            ratios = true_ratios(ann.weak(ids), ids, ann.classes, truth["audio"], truth["visual"])
        else:
            ratios = read_ratios(npz, ann.classes)
    log.info("noise ratios (%s):\n%s", source, "\n".join(
        f"{m} " + " ".join(f"{v:.3f}" for v in getattr(ratios, m)) for m in ("audio", "visual")))
    write_ratios(out, ratios)
    if npz_out is not None:
        write_npz(npz_out, ratios)
    if quality_dir is not None:
        true = true_ratios(ann.weak(ids), ids, ann.classes, truth["audio"], truth["visual"])
        paths = quality_paths(quality_dir)
        Q.write_ratio_report(Q.ratio_comparison(ratios, true), paths["parquet"], paths["md"], paths["png"],
                             title=f"Noise ratios ({source}, {Path(out).parent}) against the truth")
    return ratios


def export_npz(ratios: str | Path, manifest: str | Path, npz: str | Path,
               annotations: str | Path | None = None) -> NoiseRatios:
    """Write the official ``noise_ratios.npz`` of a ratio table (``avvp noise-ratios --to-npz``)."""
    ann = load_annotations(manifest, annotations, dense=False)
    table = read_ratios(ratios, ann.classes)
    write_npz(npz, table)
    return table


# ------------------------------------------------------------------- dynamic drops' quality

def run_drop_quality(drops: str | Path, manifest: str | Path, out_dir: str | Path,
                     annotations: str | Path | None = None) -> pd.DataFrame:
    """``avvp drop-quality``: precision and recall of a dynamic method's drops against the truth.

    Writes into ``out_dir``: ``quality.parquet/.md/.png`` (pooled over the epochs in which the
    method could drop, in the layout of the static methods' report), ``quality_epochs.parquet``
    (per epoch) and ``drop_counts.parquet`` (how often each video, class and modality was dropped,
    and whether that label is truly absent). Returns the pooled table.
    """
    from avvp.infra.atomic import save_figure, write_parquet, write_text

    frame = read_drops(drops)
    records = frame.attrs["epochs"]
    ann = load_annotations(manifest, annotations, dense=False)
    ids = split_ids(ann, "train", manifest)
    truth = Q.train_truth(manifest)
    epochs = [int(r["epoch"]) for r in records]
    active = [int(r["epoch"]) for r in records if r.get("active")]
    tables = epoch_tables(frame, ids, ann.classes, ann.weak(ids), epochs)
    per_epoch, pooled = Q.epoch_quality(tables, active, truth["audio"], truth["visual"], ann.classes)
    paths = quality_paths(out_dir)
    title = f"Drop quality ({Path(drops).parent}), pooled over epochs {_ranges(active)}"
    write_parquet(paths["parquet"], pooled)
    write_parquet(Path(out_dir) / "quality_epochs.parquet", per_epoch)
    write_parquet(Path(out_dir) / "drop_counts.parquet", Q.count_truth(drop_counts(frame), truth))
    text = Q.to_markdown(pooled, title) + "\n\n" + _epoch_markdown(per_epoch)
    write_text(paths["md"], text)
    save_figure(paths["png"], Q.plot(pooled, title))
    return pooled


def _epoch_markdown(per_epoch: pd.DataFrame) -> str:
    from avvp.core.table_layout import to_markdown as pipe_table

    rows = per_epoch[per_epoch["class"] == "all"].copy()
    wide = rows.pivot(index="epoch", columns="modality", values=["dropped", "correct", "precision", "recall"])
    wide.columns = [f"{m} {k}" for k, m in wide.columns]
    for col in wide.columns:
        if col.endswith(("precision", "recall")):
            wide[col] = wide[col] * 100.0
        else:
            wide[col] = wide[col].astype(int).astype(str)
    return pipe_table(wide[sorted(wide.columns)], title="Per epoch (all classes; precision and recall in %)")


def _ranges(values: list[int]) -> str:
    if not values:
        return "none"
    return f"{min(values)}–{max(values)}" if values == list(range(min(values), max(values) + 1)) else \
        ", ".join(map(str, values))
