"""avvp.workflow (the rules' helpers) and avvp.layout (the results layout), without Snakemake.

The rules call ``W = Workflow(config)``'s methods; these tests build it on the shipped configs and
check its targets, input functions and the layout the rules and avvp.experiments share.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from avvp import experiments, layout
from avvp.core.feature_roles import FEATURE_ROLES
from avvp.workflow import Workflow

ROOT = Path(__file__).resolve().parents[1]
#: Modules building the DAG must not import (slow, and model code has no place there).
HEAVY = ("torch", "torchvision", "timm", "transformers", "avvp.core.model", "avvp.core.architectures",
         "avvp.core.valor.model", "avvp.stages.parse")


def load_config(*overrides: str) -> dict:
    """config.yaml with the given config files laid over it, key by key (as `--configfile` does)."""
    def merge(base: dict, over: dict) -> dict:
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value
        return base

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for name in overrides:
        merge(config, yaml.safe_load((ROOT / name).read_text()))
    return config


def heavy_modules_after(code: str) -> list[str]:
    """The :data:`HEAVY` modules loaded after running ``code`` in a fresh interpreter."""
    probe = (f"import sys\n{code}\n"
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    last = (done.stdout.strip().splitlines() or [""])[-1]
    return [m for m in last.split(",") if m]


def wc(**values) -> SimpleNamespace:
    """Rule wildcards."""
    return SimpleNamespace(**values)


# ------------------------------------------------------------------------ no torch in the DAG

def test_building_the_dag_imports_no_model_code():
    code = ("import yaml\nfrom avvp.workflow import Workflow\n"
            "W = Workflow(yaml.safe_load(open('config.yaml')))\n"
            "assert W.targets()\n"
            "W.train_inputs(type('w', (), {'variant': 'valor_pp', 'seed': '1'}))\n"
            "W.parse_features_flag()\n")
    assert heavy_modules_after(code) == []


def test_the_import_check_can_fail():
    """The probe above sees torch when a module that needs it is imported."""
    assert "torch" in heavy_modules_after("import avvp.core.architectures")


# ---------------------------------------------------------------------------------- targets

def test_targets_of_the_default_config():
    config = load_config()
    W = Workflow(config)
    root = f"{config['results']}/{config['dataset']}"
    shards = config["synth"]["shards"]
    tables = [t for t in experiments.TABLES if config["experiments"].get(t)]
    expected = ([f"{root}/manifest.parquet"]
                + [f"{root}/clips/shard_{i}.parquet" for i in range(shards)]
                + [f"{root}/features/{role}.h5" for role in FEATURE_ROLES]
                + [f"{root}/tables/{t}.{ext}" for t in tables for ext in ("md", "csv", "png")])
    assert W.targets() == expected
    assert tables, "the default config builds at least one table"


def test_targets_of_the_llp_config():
    config = load_config("config/llp.yaml")
    W = Workflow(config)
    root = f"results/{config['dataset']}"
    targets = W.targets()
    assert targets[0] == f"{root}/manifest.parquet"
    assert not any("/clips/" in t for t in targets), "LLP clips are not demo shards"
    stores = {f"{root}/features/{r}.h5" for r in FEATURE_ROLES}
    stores |= {f"{root}/features/{r}.h5" for r in (config["features"].get("teachers") or [])}
    assert stores <= set(targets)
    enabled = [t for t in experiments.TABLES if config["experiments"].get(t)]
    assert {t.split("/")[-1].split(".")[0] for t in targets if "/tables/" in t} == set(enabled)
    assert W.needs_download() and W.download_table() == [f"{root}/clips/downloads.parquet"]


def test_parse_summary_is_a_target_once_videos_are_set(tmp_path):
    config = load_config()
    config["parse"] = {"videos": str(tmp_path), "out": "mine"}
    (tmp_path / "b.MP4").write_bytes(b"")
    (tmp_path / "a.mkv").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    W = Workflow(config)
    assert W.targets()[-1] == "results/demo/mine/summary.csv"
    assert W.parse_video_files(wc()) == [str(tmp_path / "a.mkv"), str(tmp_path / "b.MP4")]


# ------------------------------------------------------------------------- input functions

def test_input_functions_of_a_refined_variant():
    config = load_config()
    W = Workflow(config)
    inputs = W.train_inputs(wc(variant="ma", seed="2"))
    assert inputs == {"audio": "results/demo/features/audio.h5",
                      "frame": "results/demo/features/frame_pooled.h5",
                      "clip": "results/demo/features/clip.h5",
                      "manifest": "results/demo/manifest.parquet",
                      "labels": "results/demo/refine/ma/seed2/labels.parquet"}
    tau = config["train"]["contrastive"]["tau"]
    assert W.train_flags(wc(variant="ma", seed="2")) == (
        f"--contrastive on --tau {tau} --labels results/demo/refine/ma/seed2/labels.parquet")
    assert W.refine_base_model(wc(name="ma", seed="2")) == "results/demo/models/baseline_c/seed2/model.pt"


def test_input_functions_of_dynamic_and_pseudo_label_variants():
    W = Workflow(load_config())
    jomold = W.train_inputs(wc(variant="jomold", seed="1"))
    assert jomold["ratios"] == "results/demo/ratios/jomold/seed1/ratios.parquet"
    assert W.ratio_inputs(wc(name="jomold", seed="1"))["model"] == \
        "results/demo/models/jomold_ne/seed1/model.pt"
    valor_pp = W.predict_inputs(wc(variant="valor_pp", seed="1"))
    assert valor_pp["model"] == "results/demo/models/valor_pp/seed1/model.pt"
    assert {valor_pp["audio"], valor_pp["frame"]} == {"results/demo/features/clap_audio.h5",
                                                      "results/demo/features/clip_image.h5"}
    flags = W.train_flags(wc(variant="valor", seed="1"))
    assert "--pseudo-audio results/demo/pseudo/audio.parquet" in flags
    assert re.fullmatch(W.static_variant_regex(), "ma")
    assert not re.fullmatch(W.static_variant_regex(), "jomold")
    assert re.fullmatch(W.dynamic_variant_regex(), "jomold")


def test_training_truth_of_an_annotation_folder(tmp_path):
    config = load_config("config/llp.yaml")
    config["data"]["annotations"] = str(tmp_path)
    assert not Workflow(config).has_train_truth()
    for name in ("AVVP_train_audio.csv", "AVVP_train_visual.csv"):
        (tmp_path / name).write_text("")
    W = Workflow(config)
    assert W.has_train_truth() and W.annotation_dir() == str(tmp_path)
    assert W.ratio_quality_outputs()["quality"] == "results/llp/ratios/{name}/seed{seed}/quality.parquet"


# ----------------------------------------------------------------------------------- layout

def test_fill_leaves_the_other_placeholders():
    assert layout.fill(layout.FEATURE_SHARD, role="audio") == "features/shards/audio/{shard}.h5"
    assert layout.fill(layout.MODEL, variant="ma", seed=3) == "models/ma/seed3/model.pt"
    assert layout.placeholders(layout.PREDICTIONS) == ["variant", "seed", "split"]


def test_experiments_use_the_layout():
    assert experiments.model_path("ma", 1) == layout.fill(layout.MODEL, variant="ma", seed=1)
    assert experiments.refine_path("ma", 1) == layout.fill(layout.REFINED_LABELS, name="ma", seed=1)
    assert experiments.metrics_path("han", 2, "val") == "eval/han/seed2/val/metrics.json"
    assert experiments.quality_path("jomold", 1) == layout.fill(layout.DROP_QUALITY, variant="jomold", seed=1)
    assert experiments.table_outputs("table2") == {
        ext: layout.fill(layout.TABLE, table="table2", ext=ext) for ext in layout.TABLE_EXTENSIONS}
    # every file a table reads matches a layout pattern
    patterns = [layout.METRICS, layout.DROP_QUALITY, layout.REFINE_QUALITY, layout.RATIO_QUALITY]
    regexes = [re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(p)) + "$") for p in patterns]
    settings = experiments.table_settings({**load_config(), "data": {"source": "synth"}})
    files = experiments.table_inputs("denoising", settings)
    assert files and all(any(r.match(f) for r in regexes) for f in files)


def test_rules_write_no_literal_results_paths():
    """Every results path of the rules comes from avvp.layout: no W.out("literal")."""
    found = []
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = path.read_text()
        found += [f"{path.name}: {m}" for m in re.findall(r"W\.out\(f?[\"'][^)]*\)", text)]
    assert not found, found
    assert not list((ROOT / "workflow" / "rules").glob("*_functions.smk"))
    assert not (ROOT / "workflow" / "rules" / "common.smk").exists()


def test_the_literal_path_check_can_fail(tmp_path):
    text = 'output:\n    model=W.out("models/{variant}/model.pt"),\n'
    assert re.findall(r"W\.out\(f?[\"'][^)]*\)", text)


@pytest.mark.parametrize("pattern", [v for k, v in vars(layout).items()
                                     if k.isupper() and isinstance(v, str)])
def test_layout_patterns_are_relative(pattern):
    assert not pattern.startswith("/") and ".." not in pattern.split("/")


def snakefile_imports(text: str) -> dict[str, str]:
    """Name -> what it is bound to, for the import lines of a Snakefile."""
    bound = {}
    for line in text.splitlines():
        m = re.match(r"from (\S+) import (.+)$", line)
        if m:
            for item in m[2].split(","):
                name, _, alias = item.strip().partition(" as ")
                bound[alias or name] = f"{m[1]}.{name}"
        m = re.match(r"import (\S+)(?: as (\S+))?$", line)
        if m:
            bound[m[2] or m[1].split(".")[0]] = m[1]
    return bound


def shadowed(bound: dict[str, str]) -> list[str]:
    """The names of ``bound`` that would replace a different global of snakemake.workflow (the
    Snakefile runs in that module's namespace)."""
    import importlib

    import snakemake.api  # noqa: F401  (imports snakemake.workflow without a cycle)
    import snakemake.workflow as smk

    names = []
    for name, target in bound.items():
        if name in vars(smk):
            module, _, attr = target.rpartition(".")
            try:
                value = getattr(importlib.import_module(module), attr) if module else importlib.import_module(attr)
            except (ImportError, AttributeError):
                value = importlib.import_module(target)
            if value is not vars(smk)[name]:
                names.append(name)
    return names


def test_the_snakefile_shadows_no_snakemake_global():
    bound = snakefile_imports((ROOT / "Snakefile").read_text())
    assert "AvvpWorkflow" in bound
    assert shadowed(bound) == []


def test_the_shadow_check_can_fail():
    assert shadowed(snakefile_imports("from avvp.workflow import Workflow\n")) == ["Workflow"]
