"""The experiment-variant registry: what each trained variant is, and the paper's tables.

:mod:`avvp.experiments.variants` holds the variants, recipes, refine and ratio targets and the
files they make (patterns in :mod:`avvp.layout`); :mod:`avvp.experiments.tables` the tables.
Every name of both is importable from here.

A *variant* is one training recipe; each is trained once per seed (config ``train.seeds``):

==========================  ===========  =========  ==============================================
name                        contrastive  tau        labels
==========================  ===========  =========  ==============================================
``baseline``                no           –          weak labels (HAN)
``baseline_c``              yes          config     weak labels (+C)
``baseline_r``              no           –          refined by ``baseline`` of the same seed (+R)
``ma``                      yes          config     refined by ``baseline_c`` (+C+R, MA)
``ma_audio``                yes          config     as ``ma``, only audio labels refined
``ma_visual``               yes          config     as ``ma``, only visual labels refined
``baseline_c_tau<t>``       yes          t          weak labels (the base of ``ma_tau<t>``)
``ma_tau<t>``               yes          t          refined by ``baseline_c_tau<t>``
``han``                     no           –          weak labels, with the HAN recipe (see below)
``jomold_ne``               yes (NCE)    0.2        weak labels: JoMoLD's noise estimator (no
                                                    cross-attention)
``jomold``                  yes (NCE)    0.2        denoised per batch with the ratios of
                                                    ``jomold_ne`` (JoMoLD w/ CL)
``jomold_nocl``             no           –          as ``jomold``, without the contrastive term
``jomold_ma``               yes (NCE)    0.2        as ``jomold``, with the ratios of MA's drops
``jomold_truth``            yes (NCE)    0.2        as ``jomold``, with the true ratios (demo only)
``valor``                   no           –          weak labels + the teachers' segment-level
                                                    pseudo labels (VALOR, :mod:`avvp.core.valor`)
``valor_plus``              no           –          as ``valor``, 4 layers of width 256 (VALOR+)
``valor_pp``                no           –          as ``valor_plus`` on the CLAP token map and
                                                    CLIP embeddings (VALOR++)
``valor_ma``                no           –          as ``valor``, pseudo labels of a class set to 0
                                                    in a modality where MA's refinement (refine
                                                    target ``ma``) dropped that modality's label
``valor_jomold``            no           –          as ``valor``, pseudo labels of a class set to 0
                                                    for a step in a modality where JoMoLD's
                                                    per-batch denoising (ratios of ``jomold_ne``)
                                                    drops that modality's label
==========================  ===========  =========  ==============================================

A *pseudo-label* variant (``pseudo``) trains with the segment-level pseudo labels of the two
teachers, ``pseudo/audio.parquet`` and ``pseudo/visual.parquet`` (:data:`PSEUDO_LABELS`), with
VALOR's recipe (:func:`avvp.core.valor.variants.valor_recipe`).

A refined variant's labels are the *refine target* of the same name:
``refine/<name>/seed<k>/labels.parquet``, made by ``avvp refine`` from the model
``models/<base>/seed<k>/model.pt`` with the variant's refine options over config ``refine``.

A *dynamic* variant (``ratios_from``) trains with per-batch label denoising
(:mod:`avvp.stages.refine.jomold`) driven by the noise ratios of the *ratio target* of that name
(:data:`RATIO_TARGETS`): ``ratios/<name>/seed<k>/ratios.parquet``, made by ``avvp noise-ratios``
from a trained estimator (``jomold``), from a refine target's drops (``ma``) or from the truth
(``truth``). Its drops are recorded (``models/<variant>/seed<k>/drops.parquet``) and scored
(``denoise/<variant>/seed<k>/quality.*``).

A variant may carry a *recipe*: overrides of config ``model``, ``train`` and ``evaluate`` for it
alone. ``han`` carries the HAN paper's (40 epochs, the epoch with the best validation
segment-level Type@AV, gate ``han`` for validation and evaluation); the JoMoLD variants carry
JoMoLD's (:data:`JOMOLD_RECIPE`); the others carry none. Config
``recipes`` overrides the registry's recipes, per variant (:func:`variant_sections`).

Tables (config ``experiments``): ``table1`` the main result (HAN against MA; its HAN row is
``baseline`` or, with ``experiments.table1_baseline: han``, ``han``), ``table2`` the
ablation (baseline, +C, +R, +C+R), ``table3`` refining audio only / visual only / both, ``table4``
the contrastive temperature τ (config ``experiments.taus``), ``methods`` the weak-label methods
(baseline, MA, JoMoLD, VALOR, VALOR with MA's labels and, where the teachers' CLAP and CLIP
feature roles are configured, VALOR++; with ``experiments.published`` the published LLP numbers
beside each cell), ``official`` each method once at its official code's seed
(:attr:`Variant.official_seed`: a row's own seeds, :attr:`TableRow.seeds`), ``denoising`` label denoising
(baseline, MA, JoMoLD without and with its contrastive term, JoMoLD with MA's ratios; with
``experiments.denoising_oracle`` also with the true ratios), with the drops' precision and recall
where the true per-modality training labels are known. Every cell is the mean ± std over seeds
of ``eval/<variant>/seed<k>/test/metrics.json`` (and of the quality files).

All paths here are relative to the data set's results folder (``<results>/<dataset>``).
"""

from __future__ import annotations

from avvp.experiments.variants import (  # noqa: F401
    TAU_PATTERN, Variant, JOMOLD_RECIPE, RatioTarget, RATIO_TARGETS, PSEUDO_LABELS, pseudo_targets,
    tau_name, get_variant, variant_names, dynamic_variant_names, get_ratio_target, ratios_target,
    ratio_source_target, refine_settings, RECIPE_SECTIONS, check_recipes, variant_sections,
    variant_settings, train_tau, model_path, refine_path, metrics_path, ratios_path, quality_path,
    ratio_quality_path, labels_target, base_model_target,
)
from avvp.experiments.tables import (  # noqa: F401
    TABLES, TABLE_TITLES, METHODS_ROWS, PUBLISHED, PUBLISHED_TABLES, DENOISING_ROWS, TableRow, table_defaults,
    TEACHER_ROLES, teacher_features, TABLE1_BASELINES, table_settings, table_rows, table_seeds, row_seeds, OFFICIAL_ROWS,
    enabled_tables, table_quality, table_ratio_targets, table_inputs, table_outputs, table_targets,
    table_variants,
)
