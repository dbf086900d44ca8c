"""Importing the official feature release as users get it (avvp.stages.import_features): layouts, bad files,
the failure table, and what training and evaluation do with videos that have no features."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avvp.core.annotations import read_llp, write_tables, youtube_id
from avvp.cli import main
from avvp.infra.errors import InputError
from avvp.core.feature_store import read_store
from avvp.stages.import_features import OFFICIAL, feats_folder, import_features, looks_quantised, read_manifest
from avvp.stages.rehearsal import write_release

FOLDERS = {role: name for role, (name, _) in OFFICIAL.items()}


@pytest.fixture(scope="module")
def release(llp_dir, tmp_path_factory):
    """A stand-in release of 48 real LLP videos and its manifest (read-only; tests copy it)."""
    root = tmp_path_factory.mktemp("release")
    write_release(llp_dir, root / "rel", {"videos": 48, "seed": 3}, progress=False)
    write_tables(read_llp(root / "rel" / "annotations"), root / "ds")
    return root


@pytest.fixture
def copy(release, tmp_path):
    """A writable copy: (release folder, manifest table, manifest path)."""
    shutil.copytree(release / "rel", tmp_path / "rel")
    shutil.copytree(release / "ds", tmp_path / "ds")
    man = tmp_path / "ds" / "manifest.parquet"
    return tmp_path / "rel", read_manifest(man), man


def _ids(manifest, split):
    return manifest.loc[manifest["split"] == split, "video_id"].tolist()


def _file(rel: Path, role: str, vid: str) -> Path:
    return rel / "feats" / FOLDERS[role] / f"{youtube_id(vid)}.npy"


def _failures(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "failures" / "import.parquet")


def test_intact_release_in_every_accepted_layout(copy, tmp_path):
    rel, manifest, _ = copy
    ids = manifest["video_id"].tolist()
    for given in (rel, rel / "feats"):
        rep = import_features(manifest, given, tmp_path / "out", progress=False)
        assert rep.videos == len(ids) and rep.failures.empty and rep.source == rel / "feats"
    archive = tmp_path / "unpacked"
    shutil.copytree(rel / "feats", archive / "LLP_features" / "feats")
    assert feats_folder(archive) == archive / "LLP_features" / "feats"
    rep = import_features(manifest, archive, tmp_path / "out", progress=False)
    for role in OFFICIAL:
        stored, array, attrs = read_store(tmp_path / "out" / f"{role}.h5")
        assert stored == ids and attrs["extractor"] == f"official:{FOLDERS[role]}"
        assert np.array_equal(array[-1], np.load(_file(rel, role, ids[-1])))


def test_bad_files_become_failure_rows_and_the_run_goes_on(copy, tmp_path):
    rel, manifest, _ = copy
    train = _ids(manifest, "train")
    _file(rel, "frame", train[0]).unlink()                                   # missing
    np.save(_file(rel, "audio", train[1]), np.zeros((10, 128), np.float64))   # dtype
    np.save(_file(rel, "clip", train[2]), np.zeros((9, 512), np.float32))     # shape
    _file(rel, "frame", train[3]).write_bytes(b"not a numpy file")           # unreadable
    nan = np.zeros((10, 512), np.float32)
    nan[3, 4] = np.nan
    np.save(_file(rel, "clip", train[4]), nan)                               # values
    np.save(_file(rel, "audio", train[5]), np.zeros((10, 128), np.uint8))     # PCA-quantised
    np.save(rel / "feats" / "vggish" / "zzzzzzzzzzz.npy", np.zeros((10, 128), np.float32))  # extra
    rep = import_features(manifest, rel, tmp_path / "out", progress=False)
    table = _failures(tmp_path / "out")
    got = dict(zip(table["video_id"], zip(table["stage"], table["reason"])))
    assert got[train[0]][0] == "missing" and "res152/" in got[train[0]][1]
    assert got[train[1]][0] == "dtype" and "float64, expected float32 (10, 128)" in got[train[1]][1]
    assert got[train[2]][0] == "shape" and "(9, 512), expected float32 (10, 512)" in got[train[2]][1]
    assert got[train[3]][0] == "unreadable" and "not a readable .npy" in got[train[3]][1]
    assert got[train[4]][0] == "values" and "NaN" in got[train[4]][1]
    assert got[train[5]][0] == "dtype" and "PCA-quantised" in got[train[5]][1]
    assert got["zzzzzzzzzzz"][0] == "extra"
    assert rep.left_out == train[:6] and rep.videos == len(manifest) - 6
    for role in OFFICIAL:   # a video left out is left out of every store
        stored, _, _ = read_store(tmp_path / "out" / f"{role}.h5")
        assert stored == [v for v in manifest["video_id"] if v not in train[:6]]


def test_files_named_by_the_full_llp_name(copy, tmp_path):
    rel, manifest, _ = copy
    vid = _ids(manifest, "train")[0]
    _file(rel, "audio", vid).rename(rel / "feats" / "vggish" / f"{vid}.npy")
    import_features(manifest, rel, tmp_path / "out", progress=False)
    reason = _failures(tmp_path / "out").set_index("video_id").loc[vid, "reason"]
    assert "full LLP file name" in reason and f"({youtube_id(vid)}.npy)" in reason
    for path in list((rel / "feats" / "vggish").iterdir()):   # every file so named: an error
        match = next((v for v in manifest["video_id"] if youtube_id(v) == path.stem), None)
        if match is not None:
            path.rename(path.with_name(f"{match}.npy"))
    with pytest.raises(InputError, match="no video could be imported.*full LLP file name"):
        import_features(manifest, rel, tmp_path / "out2", progress=False)
    assert not (tmp_path / "out2" / "audio.h5").exists()


def test_a_quantised_vggish_release_is_an_error_saying_what_was_expected(copy, tmp_path):
    rel, manifest, _ = copy
    for path in (rel / "feats" / "vggish").iterdir():
        np.save(path, np.clip(np.load(path) * 40 + 128, 0, 255).astype(np.uint8))
    with pytest.raises(InputError, match="PCA-quantised.*float32 \\(10, 128\\)"):
        import_features(manifest, rel, tmp_path / "out", progress=False)


def test_float_valued_quantised_vggish_is_imported_and_reported(copy, tmp_path):
    rel, manifest, _ = copy
    vid = manifest["video_id"].iloc[0]
    np.save(_file(rel, "audio", vid), np.full((10, 128), 17.0, np.float32))
    rep = import_features(manifest, rel, tmp_path / "out", progress=False)
    assert rep.quantised == [vid] and rep.failures.empty
    assert looks_quantised(np.array([0.0, 255.0])) and not looks_quantised(np.array([0.5, 3.0]))


def test_an_archive_that_was_not_unpacked(copy, tmp_path):
    rel, manifest, _ = copy
    archive = tmp_path / "downloads" / "feats.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(_file(rel, "audio", manifest["video_id"].iloc[0]), "feats/vggish/x.npy")
    for given in (archive, archive.parent):
        with pytest.raises(InputError, match="archive that was not unpacked.*unzip feats.zip"):
            import_features(manifest, given, tmp_path / "out", progress=False)
    with pytest.raises(InputError, match=r"not found: vggish/, res152/"):
        import_features(manifest, tmp_path / "ds", tmp_path / "out", progress=False)


def test_a_killed_import_leaves_no_stale_store_behind(copy, tmp_path):
    rel, manifest, _ = copy
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".frame.h5.abc123.tmp.h5"      # what atomic_path leaves when SIGKILLed
    stale.write_bytes(b"x" * 1000)
    import_features(manifest, rel, out, progress=False)
    assert not stale.exists() and (out / "frame.h5").exists()


def test_videos_without_features_in_training_and_evaluation(copy, tmp_path, capsys, caplog, one_thread):
    """Training leaves a training video out with a warning that counts it; a val video without
    features stops training (naming it) unless --allow-missing; evaluation then says how many it
    scored."""
    rel, manifest, man = copy
    train, val, test = (_ids(manifest, s) for s in ("train", "val", "test"))
    _file(rel, "frame", train[0]).unlink()
    _file(rel, "clip", val[0]).unlink()
    _file(rel, "audio", test[0]).unlink()
    feats = man.parent / "features"
    assert main(["import-features", "--manifest", str(man), "--folder", str(rel), "--out-dir", str(feats),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"{len(manifest) - 3} of {len(manifest)} videos imported" in printed
    assert "1 val videos have no features" in printed and "1 test videos have no features" in printed
    settings = '{"train": {"epochs": 1, "device": "cpu"}}'
    model = tmp_path / "m" / "model.pt"
    args = ["train", "--features-dir", str(feats), "--manifest", str(man), "--out", str(model),
            "--settings", settings, "--no-progress"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 of" in err and "requested val videos have no features" in err and val[0] in err
    caplog.clear()
    assert main(args + ["--allow-missing"]) == 0
    assert f"1 of {len(train)} train videos have no features" in caplog.text
    pred = tmp_path / "test.npz"
    predict = ["predict", "--model", str(model), "--features-dir", str(feats), "--manifest", str(man),
               "--split", "test", "--out", str(pred), "--no-progress"]
    assert main(predict) == 1 and test[0] in capsys.readouterr().err
    assert main(predict + ["--allow-missing"]) == 0
    evaluate = ["evaluate", "--predictions", str(pred), "--annotations", str(rel / "annotations"),
                "--split", "test", "--out", str(tmp_path / "eval"), "--timeline-videos", "0"]
    assert main(evaluate) == 1 and "have no prediction" in capsys.readouterr().err
    assert main(evaluate + ["--allow-missing"]) == 0
    table = (tmp_path / "eval" / "table.md").read_text()
    assert f"{len(test) - 1} of {len(test)} videos: 1 without features are not scored" in table
