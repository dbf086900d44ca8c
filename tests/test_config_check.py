"""Settings that depend on each other are checked when the workflow loads, before any job runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from avvp.config_check import check_config, config_problems
from avvp.infra.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _demo(**features_frame) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["features"]["frame"].update(features_frame)
    return config


def test_shipped_configs_pass():
    for name in ("config.yaml", "config/llp.yaml", "config/llp_features.yaml"):
        assert config_problems(yaml.safe_load((REPO / name).read_text())) == [], name


def test_crop_larger_than_size():
    with pytest.raises(ConfigError, match=r"features\.frame\.crop \(300\) is larger than "
                                          r"features\.frame\.size \(40\)"):
        check_config(_demo(crop=300))
    assert config_problems(_demo(crop=40)) == [] and config_problems(_demo(crop=None)) == []
    # a key left out takes the extractor's default (resnet152: size 256, crop 224)
    frame = {"extractor": "resnet152", "backbone": "resnet18", "weights": "none", "size": 200}
    config = {**_demo(), "features": {"frame": frame}}
    assert "crop (224) is larger than features.frame.size (200)" in config_problems(config)[0]
    # imported official features are not extracted: their frame settings are not used
    config["features"]["official"] = "/feats"
    assert config_problems(config) == []


def test_synth_settings_and_every_problem_at_once():
    config = _demo(crop=300)
    config["synth"].update(events_per_video=[3, 2])
    config["dataset"] = ".."
    problems = config_problems(config)
    assert len(problems) == 3
    assert any("synth.events_per_video = [3, 2]" in p for p in problems)


def test_snakemake_stops_before_any_job(tmp_path):
    """`snakemake -n` with crop > size stops at once, naming both settings."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_demo(crop=300)))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
         str(tmp_path), "-n"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "features.frame.crop (300) is larger than features.frame.size (40)" in proc.stdout
    assert not (tmp_path / "results").exists()
