"""Hostile ids and names never reach the filesystem: refused where they enter, with the file and
line, and every path built from a name goes through ``avvp.infra.paths.child``.

Generated hostile ids: ``..``, ``/``, ``\\``, NUL, newline, a leading ``-``, 300 characters and
non-ASCII. Each test runs in a sandbox folder and checks that nothing was created outside its
results folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from avvp.core.annotations import read_llp
from avvp.core.classes import write_classes
from avvp.cli import main
from avvp.config_check import config_problems
from avvp.infra.errors import InputError
from avvp.stages.parse import parse_videos
from avvp.infra.paths import check_youtube_id, child, name_problem

CLASSES = ["Alpha", "Beta", "Gamma"]


def hostile_ids(outside: Path) -> dict[str, str]:
    """Ids that would escape a folder or break a file name; ``outside`` is where an absolute one
    points (a folder that must stay absent)."""
    return {
        "dotdot": "../../evil1",
        "dotdot-only": "..",
        "absolute": f"{outside}/ab",
        "backslash": "..\\..\\evil",
        "nul": "abcde\x00fghij",
        "newline": "abcde\nfghij",
        "leading-dash": "--output=x",
        "long": "a" * 300,
        "non-ascii": "vidéo_12345",
    }


HOSTILE_KEYS = list(hostile_ids(Path("/x")))


def _tree(root: Path, *skip: Path) -> set[str]:
    """Every path under ``root`` except those under ``skip``."""
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if not any(s in (p, *p.parents) for s in skip)}


@pytest.fixture()
def sandbox(tmp_path: Path):
    """(inputs folder, results folder, the absent 'outside' folder); after the test, nothing may
    exist outside inputs/ and results/ that was not there before."""
    inputs, results = tmp_path / "inputs", tmp_path / "results"
    inputs.mkdir()
    results.mkdir()
    outside = tmp_path / "outside"
    before = _tree(tmp_path, inputs, results)
    yield inputs, results, outside
    assert _tree(tmp_path, inputs, results) == before
    assert not outside.exists() and not (tmp_path.parent / "evil1").exists()


# ---------------------------------------------------------------------------------- paths

@pytest.mark.parametrize("key", HOSTILE_KEYS + ["dot", "empty"])
def test_child_refuses_hostile_names(sandbox, key):
    _, results, outside = sandbox
    name = {**hostile_ids(outside), "dot": ".", "empty": ""}[key]
    with pytest.raises(InputError) as err:
        child(results, name, ".mp4", source="list.csv", line=7)
    assert err.value.path == "list.csv" and err.value.line == 7
    with pytest.raises(InputError):
        child(results, name, youtube=True)


def test_child_accepts_ids_and_safe_names(tmp_path):
    assert child(tmp_path, "-9WBkdJq104", ".mp4") == tmp_path / "-9WBkdJq104.mp4"  # a real LLP id
    assert child(tmp_path, "My video (1)") == tmp_path / "My video (1)"
    with pytest.raises(InputError, match="not a YouTube id"):
        child(tmp_path, "My video (1)", youtube=True)
    assert check_youtube_id("a_b-c_d_e_f") == "a_b-c_d_e_f"
    assert name_problem("x" * 200) is None and "at most 200" in name_problem("x" * 201)
    for bad in ("-x", ".hidden", "ends.", "ends ", "a/b", "a\\b"):
        assert name_problem(bad) is not None, bad


# ----------------------------------------------------------------------------- annotations

def _llp_folder(folder: Path, train_row: str) -> Path:
    folder.mkdir()
    write_classes(folder, CLASSES)
    # written as bytes: a newline inside the id is quoted, so the row stays one CSV record
    row = f'"{train_row}"' if "\n" in train_row else train_row
    (folder / "AVVP_train.csv").write_bytes(
        f"filename\tevent_labels\nvid00000000_0_10\tGamma\n{row}\tAlpha\n".encode())
    for name in ("AVVP_val_pd.csv", "AVVP_test_pd.csv"):
        (folder / name).write_text("filename\tevent_labels\n")
    for name in ("AVVP_eval_audio.csv", "AVVP_eval_visual.csv"):
        (folder / name).write_text("filename\tonset\toffset\tevent_labels\n")
    return folder


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_annotation_rows_with_hostile_ids_are_refused(sandbox, key, capsys):
    inputs, results, outside = sandbox
    folder = _llp_folder(inputs / "annotations", f"{hostile_ids(outside)[key]}_0_10")
    with pytest.raises(InputError) as err:
        read_llp(folder)
    assert Path(err.value.path).name == "AVVP_train.csv" and err.value.line == 3
    assert "is not '<11-character id>_<start>_<end>'" in err.value.problem
    assert main(["manifest", str(folder), "--out", str(results)]) == 1
    assert "AVVP_train.csv, line 3" in capsys.readouterr().err
    assert not (results / "manifest.parquet").exists()


def test_non_utf8_annotation_file_names_its_line(tmp_path):
    folder = _llp_folder(tmp_path / "a", "vid00000001_0_10")
    path = folder / "AVVP_train.csv"
    path.write_bytes(path.read_bytes().replace(b"vid00000001", b"vid0000\xe90001"))
    with pytest.raises(InputError, match="not UTF-8") as err:
        read_llp(folder)
    assert err.value.line == 3


def test_bad_windows_are_refused(tmp_path):
    for i, name in enumerate(("vid00000001_nan_nan", "vid00000001_0_1e3", "vid00000001_-5_5",
                              "vid00000001_0_10_", "vid00000001_ 0_10")):
        with pytest.raises(InputError, match="is not '<11-character id>"):
            read_llp(_llp_folder(tmp_path / str(i), name))


# ------------------------------------------------------------------------------- download

SERVED = "BjCEufrlXm4"  # what the `server` fixture (conftest.py) serves


def _download(manifest: Path, clips: Path, template: str) -> int:
    settings = json.dumps({"url_template": template, "retries": 0})
    return main(["download", str(manifest), "--out", str(clips), "--settings", settings,
                 "--no-progress"])


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_download_refuses_hostile_manifest_rows(sandbox, server, key, capsys):
    inputs, results, outside = sandbox
    template, _, hits = server
    bad = hostile_ids(outside)[key]
    manifest = inputs / "manifest.parquet"
    pd.DataFrame({"video_id": [f"{SERVED}_0_10", f"{bad}_0_10"], "youtube_id": [SERVED, bad],
                  "start": [0.0, 0.0], "end": [10.0, 10.0]}).to_parquet(manifest)
    assert _download(manifest, results / "clips", template) == 1
    assert f"{manifest}: row 2:" in capsys.readouterr().err
    assert hits == [] and not (results / "clips").exists()  # refused before anything was fetched


def test_download_refuses_an_id_that_is_not_the_file_names(sandbox, server):
    from avvp.stages.download import download_videos

    _, results, outside = sandbox
    template, _, hits = server
    targets = pd.DataFrame({"video_id": [f"{SERVED}_0_10"], "youtube_id": ["../../evil1"],
                            "start": [0.0], "end": [10.0]})
    with pytest.raises(InputError, match="row 1: youtube_id '../../evil1' is not the id"):
        download_videos(targets, results / "clips", {"url_template": template}, progress=False)
    assert hits == []


def test_download_of_an_id_with_a_leading_dash_stays_in_its_folder(sandbox, server):
    inputs, results, _ = sandbox
    template, served, _ = server
    dash = "-" + SERVED[1:]  # YouTube ids may start with '-': accepted, and kept in the folder
    (served / f"{SERVED}.mp4").rename(served / f"{dash}.mp4")
    manifest = inputs / "manifest.parquet"
    pd.DataFrame({"video_id": [f"{dash}_0_10"], "youtube_id": [dash], "start": [0.0],
                  "end": [10.0]}).to_parquet(manifest)
    assert _download(manifest, results / "clips", template) == 0
    assert (results / "clips" / f"{dash}.mp4").is_file()


# ---------------------------------------------------------------------------------- synth

def test_synth_render_refuses_a_hostile_id_in_the_plan(sandbox):
    from avvp.stages.synth import make_plan, render_shard, resolve, write_annotations

    _, results, _ = sandbox
    settings = resolve({"n_train": 1, "n_val": 1, "n_test": 1, "width": 32, "height": 32,
                        "fps": 8, "sample_rate": 16000, "duration": 2, "clutter": 0,
                        "events_per_video": [1, 1]})
    annotations = results / "annotations"
    write_annotations(make_plan(settings), annotations)
    plan_file = annotations / "synth_plan.json"
    plan = json.loads(plan_file.read_text())
    plan["videos"][0]["youtube_id"] = "../../evil1"
    plan_file.write_text(json.dumps(plan))
    with pytest.raises(InputError, match="not a YouTube id") as err:
        render_shard(annotations, settings, 0, 1, results / "clips", progress=False)
    assert Path(err.value.path) == plan_file


# ---------------------------------------------------------------------------------- parse

def test_parse_refuses_output_names_outside_its_folder(sandbox):
    videos, results, _ = sandbox
    for name in ("...mp4", "-x.mp4", ".mp4"):  # stems '..', '-x' and '.mp4'
        (videos / name).write_bytes(b"not parsed")
    out = results / "parsed"
    summary = parse_videos(sorted(videos.iterdir()), None, out, progress=False, parser=object())
    table = summary.table
    assert table["status"].tolist() == ["failed"] * 3
    assert table["message"].str.contains("output folder name").all()
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv"]


# --------------------------------------------------------------------------- workflow config

def test_workflow_names_that_would_leave_the_results_folder():
    base = {"dataset": "demo", "data": {"source": "llp"}, "features": {"official": "x"}}
    assert config_problems(base) == []
    for dataset in ("..", ".", "-x", "a/b", "a" * 300, "vidéo"):
        assert any("dataset" in p for p in config_problems({**base, "dataset": dataset})), dataset
    for out in ("../x", "/tmp/x", "a/../b", "a//b"):
        problems = config_problems({**base, "parse": {"out": out}})
        assert any("parse.out" in p for p in problems), out
    assert config_problems({**base, "parse": {"out": "parsed/run 1"}}) == []
