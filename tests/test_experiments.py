"""The experiment-variant registry, the paper's tables (mean ± std over seeds) and `avvp table`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avvp.stages import paper_tables as aggregate
from avvp import experiments as E
from avvp.cli import main
from avvp.infra.errors import ConfigError, InputError
from avvp.core.metrics import METRICS

CONFIG = {
    "train": {"seeds": [1, 2, 3], "contrastive": {"tau": 0.2}},
    "refine": {"seed": 2, "partners": 1, "modalities": "both"},
    "experiments": {"table1": False, "table2": True, "table3": False, "table4": True,
                    "taus": [0.1, 0.2, 0.4]},
}


def test_registry_variants():
    assert not E.get_variant("baseline").contrastive and E.get_variant("baseline").labels_from is None
    assert E.get_variant("baseline_c").contrastive and E.get_variant("baseline_c").tau is None
    r = E.get_variant("baseline_r")
    assert not r.contrastive and r.labels_from == "baseline_r" and r.base == "baseline"
    ma = E.get_variant("ma")
    assert ma.contrastive and ma.labels_from == "ma" and ma.base == "baseline_c"
    assert E.get_variant("ma_audio").refine == {"modalities": "audio"}
    assert E.get_variant("ma_visual").refine == {"modalities": "visual"}
    t = E.get_variant("ma_tau0.1")
    assert t.tau == 0.1 and t.contrastive and t.base == "baseline_c_tau0.1" and t.labels_from == "ma_tau0.1"
    b = E.get_variant(t.base)
    assert b.tau == 0.1 and b.contrastive and b.labels_from is None
    han = E.get_variant("han")
    assert not han.contrastive and han.labels_from is None and han.label == "HAN (HAN recipe)"
    assert han.recipe == {"train": {"epochs": 40, "select": "best", "gate": "han"}, "evaluate": {"gate": "han"}}
    assert all(not E.get_variant(n).recipe for n in E.variant_names()
               if n != "han" and not n.startswith(("jomold", "valor")))
    with pytest.raises(ConfigError, match="unknown experiment variant 'hann'"):
        E.get_variant("hann")


def test_jomold_variants_carry_the_official_recipe():
    """jomold.md §3, §4, §6.1, §7: the estimator without cross-attention and weights 1/1/1; the
    denoised models with weights 2/1/1 and dynamic denoising from a ratio target."""
    config = {"model": {"standardize": True, "dropout": 0.1}, "train": {"epochs": 12, "device": "cpu",
              "contrastive": {"negatives": "batch", "tau": 0.3}}, "evaluate": {"gate": "han"}}
    ne = E.variant_sections("jomold_ne", config)
    assert ne["model"] == {"standardize": True, "dropout": 0.1, "visual_dropout": 0.5, "cross_attention": False}
    t = ne["train"]
    assert (t["epochs"], t["batch_size"], t["lr"], t["step_size"], t["gamma"]) == (25, 128, 5e-4, 6, 0.25)
    assert (t["select"], t["select_metric"], t["gate"], t["device"]) == ("best", "event_audio", "ma", "cpu")
    assert t["contrastive"] == {"negatives": "video", "tau": 0.2, "weight": 1.0, "smoothing": 0.1,
                                "symmetric": False, "visual": "post", "loss": "nce"}
    assert "loss_weights" not in t and "denoise" not in t and ne["evaluate"] == {"gate": "ma"}
    for name, ratios in (("jomold", "jomold"), ("jomold_nocl", "jomold"), ("jomold_ma", "ma"),
                         ("jomold_truth", "truth")):
        v = E.get_variant(name)
        s = E.variant_sections(name, config)
        assert v.ratios_from == ratios and v.dynamic and v.contrastive == (name != "jomold_nocl")
        assert s["model"]["cross_attention"] and s["model"]["visual_dropout"] == 0.5
        assert s["train"]["loss_weights"] == {"global": 1.0, "audio": 2.0, "visual": 1.0}
        assert s["train"]["denoise"] == {"method": "jomold"}
        assert E.ratios_target(name, 2) == f"ratios/{ratios}/seed2/ratios.parquet"
        assert E.quality_path(name, 2) == f"denoise/{name}/seed2/quality.parquet"
    assert E.dynamic_variant_names() == ["jomold", "jomold_nocl", "jomold_ma", "jomold_truth", "valor_jomold"]
    assert E.ratio_source_target("jomold", 3) == "models/jomold_ne/seed3/model.pt"
    assert E.ratio_source_target("ma", 3) == "refine/ma/seed3/labels.parquet"
    assert E.ratio_source_target("truth", 3) is None
    assert E.ratios_target("ma", 1) is None and E.quality_path("baseline", 1) is None
    assert E.quality_path("ma", 1) == "refine/ma/seed1/quality.parquet"
    with pytest.raises(ConfigError, match="unknown noise-ratio target 'jomold2'"):
        E.get_ratio_target("jomold2")
    # config recipes override the registry's, the model section included
    s = E.variant_sections("jomold", config, {"jomold": {"model": {"visual_dropout": 0.2},
                                                         "train": {"denoise": {"schedule": "linear"}}}})
    assert s["model"]["visual_dropout"] == 0.2 and s["train"]["denoise"] == {"method": "jomold", "schedule": "linear"}


def test_denoising_table_rows_and_inputs():
    config = {**CONFIG, "data": {"source": "synth"}, "experiments": {"denoising": True}}
    s = E.table_settings(config)
    assert [r.variant for r in E.table_rows("denoising", s)] == list(E.DENOISING_ROWS)
    assert E.table_variants(config) == list(E.DENOISING_ROWS)
    inputs = E.table_inputs("denoising", s)
    assert "eval/jomold_ma/seed3/test/metrics.json" in inputs
    assert "refine/ma/seed1/quality.parquet" in inputs and "denoise/jomold/seed2/quality.parquet" in inputs
    assert "ratios/jomold/seed1/quality.parquet" in inputs and "ratios/ma/seed3/quality.parquet" in inputs
    assert not any(p.startswith(("denoise/baseline", "ratios/truth")) for p in inputs)
    oracle = E.table_settings({**config, "experiments": {"denoising": True, "denoising_oracle": True}})
    assert E.table_rows("denoising", oracle)[-1].variant == "jomold_truth"
    assert "ratios/truth/seed1/quality.parquet" not in E.table_inputs("denoising", oracle)
    llp = E.table_settings({**config, "data": {"source": "llp"}})
    assert all(p.endswith("metrics.json") for p in E.table_inputs("denoising", llp))


TRAIN = {"epochs": 12, "select": "last", "gate": "ma", "batch_size": 16,
         "contrastive": {"tau": 0.2, "negatives": "video"}}
EVALUATE = {"gate": "ma", "timeline_videos": 4}


def test_variant_settings_merge_order():
    """config train/evaluate < the registry's recipe < config recipes; nested mappings key by key."""
    train, evaluate = E.variant_settings("ma", TRAIN, EVALUATE, {})
    assert train == TRAIN and list(train) == list(TRAIN) and evaluate == EVALUATE
    assert train is not TRAIN and train["contrastive"] is not TRAIN["contrastive"]

    train, evaluate = E.variant_settings("han", TRAIN, EVALUATE)
    assert train == {**TRAIN, "epochs": 40, "select": "best", "gate": "han"}
    assert evaluate == {"gate": "han", "timeline_videos": 4}

    recipes = {"han": {"train": {"epochs": 30, "contrastive": {"tau": 0.1}}, "evaluate": {"timeline_videos": 2}},
               "baseline": {"evaluate": {"gate": "han"}}}
    train, evaluate = E.variant_settings("han", TRAIN, EVALUATE, recipes)
    assert (train["epochs"], train["select"], train["gate"], train["batch_size"]) == (30, "best", "han", 16)
    assert train["contrastive"] == {"tau": 0.1, "negatives": "video"}
    assert evaluate == {"gate": "han", "timeline_videos": 2}
    assert E.variant_settings("baseline", TRAIN, EVALUATE, recipes) == (TRAIN, {"gate": "han", "timeline_videos": 4})
    assert E.variant_settings("ma", TRAIN, EVALUATE, recipes) == (TRAIN, EVALUATE)
    assert TRAIN["contrastive"] == {"tau": 0.2, "negatives": "video"}  # the config is left alone
    # empty or missing config sections
    assert E.variant_settings("han", None, None, None) == ({"epochs": 40, "select": "best", "gate": "han"},
                                                           {"gate": "han"})


def test_recipes_are_checked():
    with pytest.raises(ConfigError, match="recipes: unknown experiment variant 'hann'"):
        E.variant_settings("han", TRAIN, EVALUATE, {"hann": {"train": {"epochs": 3}}})
    with pytest.raises(ConfigError, match="unknown experiment variant 'hann'"):
        E.check_recipes({"ma": {}, "hann": {}})
    with pytest.raises(ConfigError, match=r"recipes\.ma\.refine"):
        E.check_recipes({"ma": {"refine": {}}})
    with pytest.raises(ConfigError, match=r"recipes\.han\.train\.seeds"):
        E.check_recipes({"han": {"train": {"seeds": [1]}}})
    assert E.check_recipes(None) == {} and E.check_recipes({"ma_tau0.3": {"evaluate": {}}})


def test_paths_and_refine_settings():
    assert E.labels_target("ma", 2) == "refine/ma/seed2/labels.parquet"
    assert E.labels_target("baseline_c", 2) is None
    assert E.base_model_target("baseline_r", 3) == "models/baseline/seed3/model.pt"
    assert E.base_model_target("ma_tau0.3", 1) == "models/baseline_c_tau0.3/seed1/model.pt"
    assert E.refine_settings("ma_visual", CONFIG["refine"])["modalities"] == "visual"
    assert E.refine_settings("ma", CONFIG["refine"]) == CONFIG["refine"]
    with pytest.raises(ConfigError):
        E.refine_settings("baseline", CONFIG["refine"])
    with pytest.raises(ConfigError):
        E.base_model_target("baseline_c", 1)


def test_table_definitions_and_targets():
    s = E.table_settings(CONFIG)
    assert [r.variant for r in E.table_rows("table2", s)] == ["baseline", "baseline_c", "baseline_r", "ma"]
    assert [r.variant for r in E.table_rows("table3", s)] == ["ma_audio", "ma_visual", "ma"]
    # the default tau reuses "ma"
    assert [r.variant for r in E.table_rows("table4", s)] == ["ma_tau0.1", "ma", "ma_tau0.4"]
    assert E.enabled_tables(CONFIG) == ["table2", "table4"]
    assert E.table_targets(CONFIG) == [f"tables/{t}.{x}" for t in ("table2", "table4") for x in ("md", "csv", "png")]
    inputs = E.table_inputs("table2", s)
    assert len(inputs) == 12 and "eval/baseline_r/seed3/test/metrics.json" in inputs
    assert E.table_variants(CONFIG) == ["baseline", "baseline_c", "baseline_r", "ma", "ma_tau0.1", "ma_tau0.4"]
    with pytest.raises(ConfigError):
        E.table_rows("table9", s)


def test_table1_baseline():
    """Table 1's HAN row is ``baseline`` (default) or ``han`` (experiments.table1_baseline)."""
    config = {**CONFIG, "experiments": {"table1": True}}
    assert [r.variant for r in E.table_rows("table1", E.table_settings(config))] == ["baseline", "ma"]
    assert E.table_variants(config) == ["baseline", "ma"]
    config["experiments"]["table1_baseline"] = "han"
    rows = E.table_rows("table1", E.table_settings(config))
    assert [(r.variant, r.label) for r in rows] == [("han", "HAN"), ("ma", "MA")]
    assert E.table_variants(config) == ["han", "ma"]
    assert "eval/han/seed3/test/metrics.json" in E.table_inputs("table1", E.table_settings(config))
    with pytest.raises(ConfigError, match="table1_baseline"):
        E.table_rows("table1", {**E.table_settings(config), "table1_baseline": "baseline_c"})


def test_table4_reuses_ma_at_its_recipe_tau():
    config = {**CONFIG, "recipes": {"ma": {"train": {"contrastive": {"tau": 0.4}}}}}
    s = E.table_settings(config)
    assert s["tau"] == 0.4
    assert [r.variant for r in E.table_rows("table4", s)] == ["ma_tau0.1", "ma_tau0.2", "ma"]


REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def _config(name="config.yaml"):
    import yaml

    return yaml.safe_load((REPO / name).read_text())


def _dry_run(config: dict, folder: Path) -> str:
    """``snakemake -n -p`` of the repository's workflow with ``config`` in ``folder``: its stdout."""
    import shutil
    import subprocess

    import yaml

    if shutil.which("snakemake") is None:
        pytest.skip("snakemake is not installed")
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        ["snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(folder), "--configfile",
         "config.yaml", "--workflow-profile", "none", "-n", "-p"],
        capture_output=True, text=True, cwd=folder, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    return proc.stdout


def test_shipped_configs_and_table1():
    """The demo's Table 1 uses the baseline run (no han jobs); the LLP configs' uses han."""
    assert "han" not in E.table_variants(_config())
    for name in ("config/llp.yaml", "config/llp_features.yaml"):
        config = _config(name)
        assert E.table_rows("table1", E.table_settings(config))[0].variant == "han"
        train, evaluate = E.variant_settings("han", config["train"], config["evaluate"], config.get("recipes"))
        assert (train["epochs"], train["select"], train["gate"], evaluate["gate"]) == (40, "best", "han", "han")
        train, evaluate = E.variant_settings("ma", config["train"], config["evaluate"], config.get("recipes"))
        assert (train["epochs"], train["select"], train["gate"], evaluate["gate"]) == (12, "last", "ma", "ma")


def test_llp_configs_have_the_valor_rows(tmp_path):
    """The LLP configs build the methods table with VALOR and VALOR++ and the published numbers:
    llp.yaml extracts the teachers from the videos, llp_features.yaml imports VALOR's release."""
    for name, extracted in (("config/llp.yaml", True), ("config/llp_features.yaml", False)):
        config = _config(name)
        settings = E.table_settings(config)
        assert "methods" in E.enabled_tables(config) and settings["published"]
        rows = [r.variant for r in E.table_rows("methods", settings)]
        assert {"valor", "valor_ma", "valor_jomold", "valor_pp"} <= set(rows), name
        assert (set(config["features"].get("teachers") or ()) == set(E.TEACHER_ROLES)) == extracted
        assert bool(config["pseudo"]["release"]) != extracted
        assert "official" in E.enabled_tables(config), name
    plan = _dry_run(_config("config/llp_features.yaml"), tmp_path)
    assert "avvp teach release --folder data/valor" in plan
    assert "--out results/llp_features/models/valor_pp/seed3/model.pt" in plan
    assert "results/llp_features/tables/methods.md" in plan
    # the official table: each method once at its official seed
    assert "results/llp_features/tables/official.md" in plan
    for variant, seed in (("han", 1), ("jomold", 6), ("valor", 1000), ("valor_plus", 64), ("valor_pp", 87)):
        assert f"--out results/llp_features/models/{variant}/seed{seed}/model.pt" in plan, variant
    assert "models/valor_plus/seed1/" not in plan  # VALOR+ is in no table averaging train.seeds


def test_official_table_rows_and_inputs():
    """The official table: one row per method, each trained once with its official code's seed."""
    settings = {**E.table_settings(CONFIG), "table1_baseline": "han", "teacher_features": True}
    rows = E.table_rows("official", settings)
    assert [(r.variant, r.seeds) for r in rows] == [
        ("han", (1,)), ("ma", (1,)), ("jomold", (6,)), ("valor", (1000,)), ("valor_plus", (64,)),
        ("valor_pp", (87,))]
    assert rows[3].label == "VALOR (seed 1000)" and rows[0].label == "HAN (seed 1)"
    inputs = E.table_inputs("official", settings)
    assert inputs == [E.metrics_path(r.variant, r.seeds[0]) for r in rows]
    without = E.table_rows("official", {**settings, "teacher_features": False, "table1_baseline": "baseline"})
    assert [r.variant for r in without] == ["baseline", "ma", "jomold", "valor", "valor_plus"]
    with pytest.raises(ConfigError, match="table1_baseline"):
        E.table_rows("official", {**settings, "table1_baseline": "ma"})


def test_official_table_shows_single_runs_beside_the_published_numbers(tmp_path):
    settings = {**E.table_settings(CONFIG), "published": True}
    for k, row in enumerate(E.table_rows("official", settings)):
        _write_metrics(tmp_path, row.variant, row.seeds[0], 0.3 + 0.1 * k)
    summary = aggregate.write_table("official", tmp_path, settings, tmp_path / "o.md", tmp_path / "o.csv",
                                    tmp_path / "o.png")
    assert list(summary["seeds"]) == ["1", "1", "6", "1000", "64"] and (summary["n_seeds"] == 1).all()
    text = (tmp_path / "o.md").read_text()
    assert "one run per row, at the seed its label names" in text and "±" not in text
    valor = 100 * (0.3 + 0.1 * 3 + 0.01 * 1000)  # _write_metrics: base + 0.01 * seed (+ 0.001 * metric)
    assert f"| VALOR (seed 1000) | {valor:.1f} (61.8) | {valor + 0.1:.1f} (65.9) |" in text
    plus = next(line for line in text.splitlines() if line.startswith("| VALOR+ (seed 64) | "))
    assert "(" not in plus.split("|", 2)[2]  # VALOR+'s numbers were never published: none beside
    assert aggregate.PUBLISHED_NOTE in text


@pytest.mark.parametrize("patch, ok", [
    ({"recipes": {}}, True),
    ({"recipes": {"han": {"train": {"epochs": 30, "contrastive": {"tau": 0.1}}, "evaluate": {"gate": "ma"}}}}, True),
    ({"recipes": {"han": {"train": {"epoch": 30}}}}, False),                   # unknown train key
    ({"recipes": {"han": {"train": {"contrastive": {"taux": 0.1}}}}}, False),  # unknown nested key
    ({"recipes": {"han": {"train": {"epochs": "30"}}}}, False),                # wrong type
    ({"recipes": {"han": {"evaluate": {"gate": "global"}}}}, False),           # not a gate
    ({"recipes": {"han": {"refine": {"seed": 1}}}}, False),                    # not a recipe section
    ({"recipes": {"han": None}}, False),
    ({"experiments": {"table1": True, "table1_baseline": "han"}}, True),
    ({"experiments": {"table1": True, "table1_baseline": "ma"}}, False),
])
def test_schema_recipes_and_table1_baseline(patch, ok):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from avvp.config_check import check_config

    config = {**_config(), **patch}

    def load():  # what the workflow does when it loads: the schema, then the checks across settings
        validate(config, str(SCHEMA))
        check_config(config)

    if ok:
        load()
    else:
        with pytest.raises((WorkflowError, ConfigError)):
            load()


def _write_metrics(root, variant, seed, base):
    overall = {m: base + 0.01 * seed + 0.001 * i for i, m in enumerate(METRICS)}
    path = root / E.metrics_path(variant, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": {}, "overall": overall}))
    return overall


def test_aggregate_mean_and_std(tmp_path):
    s = E.table_settings(CONFIG)
    truth = {}
    for k, variant in enumerate(["baseline", "baseline_c", "baseline_r", "ma"]):
        truth[variant] = [_write_metrics(tmp_path, variant, seed, 0.3 + 0.1 * k) for seed in (1, 2, 3)]
    long, summary = aggregate.build("table2", tmp_path, s)
    assert len(long) == 12
    assert list(summary.index) == ["HAN (baseline)", "+C", "+R", "+C+R (MA)"]
    for variant, runs in truth.items():
        row = summary[summary["variant"] == variant].iloc[0]
        for m in ("segment_visual", "event_type"):
            vals = np.array([r[m] for r in runs]) * 100
            assert row[f"{m}_mean"] == pytest.approx(vals.mean())
            assert row[f"{m}_std"] == pytest.approx(vals.std(ddof=1))
    md = aggregate.to_markdown(summary, "t")
    mean = np.mean([r["segment_av"] for r in truth["ma"]]) * 100
    assert f"{mean:.1f} ± 1.0" in md.splitlines()[-1]


def test_missing_or_bad_metrics_are_named(tmp_path):
    s = {**E.table_settings(CONFIG), "seeds": [1]}
    with pytest.raises(InputError, match="metrics.json"):
        aggregate.build("table1", tmp_path, s)
    path = tmp_path / E.metrics_path("baseline", 1)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"overall": {"segment_audio": 0.5}}))
    with pytest.raises(InputError, match="lacks"):
        aggregate.read_overall(path)


def _write_quality(root, path, precision):
    q = pd.DataFrame({"modality": ["audio", "audio", "visual", "visual"], "class": ["x", "all", "x", "all"],
                      "precision": [0.0, precision, 0.0, precision / 2], "recall": [0.0, 0.5, 0.0, 0.25]})
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    q.to_parquet(root / path)


def test_denoising_table_averages_drop_quality_and_ratio_errors(tmp_path):
    s = {**E.table_settings({"train": {"seeds": [1, 2]}, "data": {"source": "synth"}}), "seeds": [1, 2]}
    for k, row in enumerate(E.table_rows("denoising", s)):
        for seed in (1, 2):
            _write_metrics(tmp_path, row.variant, seed, 0.3 + 0.05 * k)
            q = E.quality_path(row.variant, seed)
            if q is not None:
                _write_quality(tmp_path, q, 0.6 + 0.1 * seed if row.variant != "ma" or seed == 1 else float("nan"))
    for name in ("jomold", "ma"):
        for seed in (1, 2):
            path = tmp_path / E.ratio_quality_path(name, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"modality": ["audio", "visual"], "class": ["all", "all"], "labels": [9, 9],
                          "estimated": [0.1 * seed, 0.2], "true": [0.2, 0.3],
                          "error": [0.05, 0.1 * seed]}).to_parquet(path)
    summary = aggregate.write_table("denoising", tmp_path, s, tmp_path / "d.md", tmp_path / "d.csv",
                                    tmp_path / "d.png")
    jm = summary[summary["variant"] == "jomold"].iloc[0]
    assert jm["drop_audio_precision_mean"] == pytest.approx(75.0)
    assert jm["drop_audio_precision_std"] == pytest.approx(np.std([70, 80], ddof=1))
    assert jm["drop_visual_recall_mean"] == pytest.approx(25.0)
    ma = summary[summary["variant"] == "ma"].iloc[0]
    assert ma["drop_audio_precision_mean"] == pytest.approx(70.0)
    assert ma["drop_audio_precision_std"] == 0.0  # the NaN seed is skipped
    assert np.isnan(summary[summary["variant"] == "baseline"].iloc[0]["drop_audio_recall_mean"])
    md = (tmp_path / "d.md").read_text()
    assert "Drop V rec." in md and "| HAN (baseline) |" in md
    ratio_row = "| JoMoLD noise estimator | 15.0 ± 7.1 | 20.0 ± 0.0 | 5.0 ± 0.0 | 20.0 ± 0.0 | 30.0 ± 0.0 | 15.0 ± 7.1 |"
    assert ratio_row in md
    assert "– | – | – | – |" in md.split("Noise ratios")[0]  # the baseline drops nothing


def test_avvp_table_command(tmp_path, capsys):
    for variant in ("baseline", "ma"):
        for seed in (1, 2):
            _write_metrics(tmp_path, variant, seed, 0.5 if variant == "ma" else 0.4)
    settings = json.dumps({"seeds": [1, 2], "taus": [0.2], "tau": 0.2, "split": "test"})
    assert main(["table", "table1", "--results", str(tmp_path), "--settings", settings]) == 0
    md = (tmp_path / "tables" / "table1.md").read_text()
    assert "| HAN |" in md and "| MA |" in md and "±" in md
    csv = pd.read_csv(tmp_path / "tables" / "table1.csv")
    assert list(csv["label"]) == ["HAN", "MA"] and (csv["n_seeds"] == 2).all()
    assert csv.loc[1, "segment_audio_mean"] > csv.loc[0, "segment_audio_mean"]
    assert (tmp_path / "tables" / "table1.png").stat().st_size > 1000
    assert "MA" in capsys.readouterr().out


@pytest.mark.slow
def test_workflow_dry_run_wires_refine_train_and_tables(tmp_path):
    """`snakemake -n` plans Table 4 through the registry: base model, refine, retrain with τ."""
    config = _config()
    config["train"]["seeds"] = [1, 2]
    config["experiments"].update({"table1": False, "table2": False, "table4": True, "taus": [0.1, 0.2],
                                  "denoising": False})
    log = _dry_run(config, tmp_path)
    res = f"{config.get('results', 'results')}/{config['dataset']}"
    assert f"avvp refine --model {res}/models/baseline_c_tau0.1/seed2/model.pt" in log
    assert f"--out {res}/refine/ma_tau0.1/seed2/labels.parquet --run-seed 2" in log
    assert f"avvp refine --model {res}/models/baseline_c/seed1/model.pt" in log  # tau 0.2 = "ma"
    assert f"--labels {res}/refine/ma_tau0.1/seed1/labels.parquet" in log
    assert f"avvp table table4 --results {res}" in log
    assert f"{res}/eval/ma_tau0.1/seed2/test/metrics.json" in log


@pytest.mark.slow
def test_workflow_dry_run_applies_recipes(tmp_path):
    """`snakemake -n`: the han variant trains and is scored with its recipe (registry, then config
    recipes), the other variants with config train/evaluate; Table 1 takes its HAN row from han."""
    config = _config()
    config["train"]["seeds"] = [1]
    config["experiments"].update({"table1": True, "table1_baseline": "han", "table2": False, "denoising": False})
    config["recipes"] = {"han": {"train": {"batch_size": 8}}}
    log = _dry_run(config, tmp_path)
    res = f"{config['results']}/{config['dataset']}"

    def train_settings(variant):
        line = next(x for x in log.splitlines()
                    if "avvp train " in x and f"--out {res}/models/{variant}/seed1/model.pt" in x)
        return json.loads(re.search(r"--settings '([^']*)'", line)[1])["train"]

    def gate(variant):
        line = next(x for x in log.splitlines()
                    if "avvp evaluate " in x and f"--predictions {res}/predictions/{variant}/seed1/test.npz" in x)
        return re.search(r"--gate (\S+)", line)[1]

    han, ma = train_settings("han"), train_settings("ma")
    assert (han["epochs"], han["select"], han["gate"], han["batch_size"]) == (40, "best", "han", 8)
    assert ma == config["train"] and (ma["epochs"], ma["select"], ma["gate"]) == (12, "last", "ma")
    assert gate("han") == "han" and gate("ma") == config["evaluate"]["gate"] == "ma"
    assert f"avvp table table1 --results {res}" in log and '"table1_baseline":"han"' in log
    assert f"{res}/models/baseline/" not in log  # Table 1 alone no longer needs the baseline run


@pytest.mark.slow
def test_workflow_dry_run_wires_jomold(tmp_path):
    """`snakemake -n`: the estimator, the ratio targets (estimator and MA's drops), the denoised
    trainings with their ratios and JoMoLD's recipe, the drops' quality and the denoising table."""
    config = _config()
    config["train"]["seeds"] = [1]
    config["experiments"].update({"table1": False, "table2": False, "denoising": True})
    config["recipes"] = {"jomold": {"train": {"denoise": {"schedule": "linear"}}}}
    log = _dry_run(config, tmp_path)
    res = f"{config['results']}/{config['dataset']}"

    def settings(variant):
        line = next(x for x in log.splitlines()
                    if "avvp train " in x and f"--out {res}/models/{variant}/seed1/model.pt" in x)
        return line, json.loads(re.search(r"--settings '([^']*)'", line)[1])

    line, ne = settings("jomold_ne")
    assert "--ratios" not in line and ne["model"]["cross_attention"] is False
    assert (ne["train"]["batch_size"], ne["train"]["select_metric"]) == (128, "event_audio")
    line, jm = settings("jomold")
    assert f"--ratios {res}/ratios/jomold/seed1/ratios.parquet" in line and "--contrastive on" in line
    assert jm["model"]["visual_dropout"] == 0.5 and jm["train"]["loss_weights"]["audio"] == 2.0
    assert jm["train"]["denoise"] == {"method": "jomold", "schedule": "linear", "warm_up_epoch": 0.9}
    line, _ = settings("jomold_nocl")
    assert "--contrastive off" in line and f"--ratios {res}/ratios/jomold/seed1/" in line
    line, _ = settings("jomold_ma")
    assert f"--ratios {res}/ratios/ma/seed1/ratios.parquet" in line
    _, ma = settings("ma")
    assert ma["model"] == config["model"] and ma["train"] == config["train"]  # MA untouched
    assert (f"avvp noise-ratios --manifest {res}/manifest.parquet --model {res}/models/jomold_ne/seed1/model.pt"
            f" --features {res}/features --out {res}/ratios/jomold/seed1/ratios.parquet") in log
    assert f"--labels {res}/refine/ma/seed1/labels.parquet --out {res}/ratios/ma/seed1/ratios.parquet" in log
    assert f"--quality-dir {res}/ratios/jomold/seed1" in log
    assert f"avvp drop-quality --drops {res}/models/jomold_ma/seed1/drops.parquet" in log
    assert f"avvp table denoising --results {res}" in log and f"{res}/models/baseline_c/seed1" in log
