"""Feature store (write/read/merge, atomic writes, partial files) and import of official features."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from avvp import __version__
from avvp.errors import InputError
from avvp.feature_store import (PartialFile, merge_stores, read_attrs, read_ids, read_store,
                                store_writer, write_store)
from avvp.import_features import import_features, looks_quantised
from avvp.cli import main

ATTRS = {"role": "audio", "extractor": "vggish", "settings": {"seed": 0}, "weights": "random:0"}


def _features(n, t=10, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, t, d)).astype(np.float32)


def test_write_read_roundtrip(tmp_path):
    path = tmp_path / "a.h5"
    feats = _features(3)
    write_store(path, ["v0_0_10", "v1_0_10", "v2_0_10"], feats, ATTRS)
    ids, arr, attrs = read_store(path)
    assert ids == ["v0_0_10", "v1_0_10", "v2_0_10"]
    assert arr.dtype == np.float32 and np.array_equal(arr, feats)
    assert attrs["role"] == "audio" and attrs["weights"] == "random:0"
    assert json.loads(attrs["settings"]) == {"seed": 0}
    assert attrs["avvp_version"] == __version__
    # a subset in the order asked
    ids, arr, _ = read_store(path, ["v2_0_10", "v0_0_10"])
    assert ids == ["v2_0_10", "v0_0_10"]
    assert np.array_equal(arr, feats[[2, 0]])
    assert read_ids(path) == ["v0_0_10", "v1_0_10", "v2_0_10"]
    # rows far apart are read one by one
    many = _features(10, seed=1)
    write_store(path, [f"w{i}" for i in range(10)], many, ATTRS)
    ids, arr, _ = read_store(path, ["w9", "w0"])
    assert ids == ["w9", "w0"] and np.array_equal(arr, many[[9, 0]])


def test_read_missing_ids_names_file_and_ids(tmp_path):
    path = tmp_path / "a.h5"
    write_store(path, ["a", "b"], _features(2), ATTRS)
    with pytest.raises(InputError, match=r"a\.h5.*1 of 2.*zzz"):
        read_store(path, ["a", "zzz"])
    with pytest.raises(InputError, match="not found"):
        read_store(tmp_path / "nope.h5")


def test_write_is_atomic(tmp_path):
    path = tmp_path / "a.h5"
    with pytest.raises(RuntimeError):
        with store_writer(path, 2, 10, 4, ATTRS) as writer:
            writer.write(0, "a", np.zeros((10, 4)))
            raise RuntimeError("killed")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []
    # an unfinished store is refused, too
    with pytest.raises(InputError, match="never written"):
        with store_writer(path, 2, 10, 4, ATTRS) as writer:
            writer.write(0, "a", np.zeros((10, 4)))
    assert not path.exists()


def test_write_checks_shapes_and_attrs(tmp_path):
    with pytest.raises(InputError, match="shape"):
        write_store(tmp_path / "a.h5", ["a", "b"], [np.zeros((10, 4)), np.zeros((9, 4))], ATTRS)
    with pytest.raises(InputError, match="weights"):
        write_store(tmp_path / "a.h5", ["a"], _features(1), {"role": "audio", "extractor": "x",
                                                              "settings": "{}"})
    with pytest.raises(InputError, match="twice"):
        write_store(tmp_path / "a.h5", ["a", "a"], _features(2), ATTRS)


def test_merge(tmp_path):
    f = _features(5)
    write_store(tmp_path / "0.h5", ["a", "b"], f[:2], ATTRS)
    write_store(tmp_path / "1.h5", [], np.zeros((0, 0, 4), np.float32), ATTRS)
    write_store(tmp_path / "2.h5", ["c", "d", "e"], f[2:], ATTRS)
    n = merge_stores([tmp_path / "0.h5", tmp_path / "1.h5", tmp_path / "2.h5"], tmp_path / "m.h5")
    assert n == 5
    ids, arr, attrs = read_store(tmp_path / "m.h5")
    assert ids == list("abcde") and np.array_equal(arr, f)
    assert attrs["extractor"] == "vggish"


def test_merge_refuses_mixed_settings_and_duplicates(tmp_path):
    write_store(tmp_path / "0.h5", ["a"], _features(1), ATTRS)
    write_store(tmp_path / "1.h5", ["b"], _features(1), {**ATTRS, "weights": "random:1"})
    write_store(tmp_path / "2.h5", ["a"], _features(1), ATTRS)
    with pytest.raises(InputError, match=r"1\.h5.*weights"):
        merge_stores([tmp_path / "0.h5", tmp_path / "1.h5"], tmp_path / "m.h5")
    with pytest.raises(InputError, match=r"video a is also in"):
        merge_stores([tmp_path / "0.h5", tmp_path / "2.h5"], tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()


def test_merge_cli(tmp_path, capsys):
    write_store(tmp_path / "0.h5", ["a"], _features(1), ATTRS)
    write_store(tmp_path / "1.h5", ["b"], _features(1, seed=1), ATTRS)
    assert main(["merge-features", "--out", str(tmp_path / "m.h5"), str(tmp_path / "0.h5"),
                 str(tmp_path / "1.h5")]) == 0
    assert read_ids(tmp_path / "m.h5") == ["a", "b"]
    assert main(["merge-features", "--out", str(tmp_path / "x.h5"), str(tmp_path / "none.h5")]) == 1
    assert "none.h5" in capsys.readouterr().err


def test_partial_file(tmp_path):
    part = PartialFile(tmp_path / "0.partial.h5", {"weights": "random:0"})
    assert part.done() == []
    part.append([("a", np.ones((2, 3)))])
    part.append([("b", np.zeros((2, 3)))])
    assert sorted(part.done()) == ["a", "b"]
    with part.reader() as videos:
        assert np.array_equal(videos["a"][...], np.ones((2, 3)))
    # other weights: the old partial results are discarded
    other = PartialFile(tmp_path / "0.partial.h5", {"weights": "random:1"})
    assert other.done() == []
    assert not (tmp_path / "0.partial.h5").exists()
    # an unreadable partial file is discarded, not fatal
    (tmp_path / "0.partial.h5").write_bytes(b"garbage")
    assert part.done() == []


# -- import of the official features ---------------------------------------------------------

def _manifest(ids):
    return pd.DataFrame({"video_id": ids, "youtube_id": [i[:11] for i in ids],
                         "start": 0.0, "end": 10.0, "split": "train", "labels": [[]] * len(ids),
                         "path": None})


def _official(folder, ids, skip=(), quantise=False):
    rng = np.random.default_rng(0)
    arrays = {}
    for name, shape in (("vggish", (10, 128)), ("res152", (80, 2048)), ("r2plus1d_18", (10, 512))):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for vid in ids:
            if vid in skip:
                continue
            a = rng.normal(size=shape).astype(np.float32)
            if quantise and name == "vggish":
                a = rng.integers(0, 256, size=shape).astype(np.float32)
            np.save(folder / name / f"{vid[:11]}.npy", a)
            arrays[(name, vid)] = a
    return arrays


IDS = ["AAAAAAAAAAA_0_10", "B-B_BBBBBBB_30_40", "CCCCCCCCCCC_5_15"]


def test_import_official(tmp_path, capsys):
    feats = tmp_path / "feats"
    arrays = _official(feats, IDS, skip={IDS[1]})
    man = tmp_path / "manifest.parquet"
    _manifest(IDS).to_parquet(man)
    assert main(["import-features", "--manifest", str(man), "--folder", str(tmp_path),
                 "--out-dir", str(tmp_path / "features"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "1 missing" in printed and IDS[1] in printed
    for role, name, shape in (("audio", "vggish", (10, 128)), ("frame", "res152", (80, 2048)),
                              ("clip", "r2plus1d_18", (10, 512))):
        ids, arr, attrs = read_store(tmp_path / "features" / f"{role}.h5")
        assert ids == [IDS[0], IDS[2]]
        assert arr.shape == (2,) + shape
        assert np.array_equal(arr[1], arrays[(name, IDS[2])])
        assert attrs["extractor"] == f"official:{name}" and attrs["role"] == role
        fails = pd.read_parquet(tmp_path / "features" / "failures" / f"{role}_import.parquet")
        assert fails["video_id"].tolist() == [IDS[1]]
    assert "PCA-quantised" not in printed


def test_import_reports_quantised_vggish(tmp_path):
    _official(tmp_path, IDS, quantise=True)
    reports = import_features(_manifest(IDS), tmp_path, tmp_path / "out", roles=["audio"],
                              progress=False)
    assert reports["audio"].quantised == IDS
    assert looks_quantised(np.array([0.0, 17.0, 255.0])) and not looks_quantised(np.array([0.5]))
    assert not looks_quantised(np.array([-1.0, 3.0]))


@pytest.mark.parametrize("bad, match", [(np.zeros((10, 128), np.float64), "dtype float64"),
                                        (np.zeros((9, 128), np.float32), r"shape \(9, 128\)")])
def test_import_rejects_wrong_files(tmp_path, bad, match):
    _official(tmp_path, IDS)
    np.save(tmp_path / "vggish" / f"{IDS[2][:11]}.npy", bad)
    with pytest.raises(InputError, match=rf"{IDS[2][:11]}\.npy.*{match}"):
        import_features(_manifest(IDS), tmp_path, tmp_path / "out", roles=["audio"], progress=False)
    assert not (tmp_path / "out" / "audio.h5").exists()


def test_import_missing_folder(tmp_path):
    (tmp_path / "vggish").mkdir()
    with pytest.raises(InputError, match="res152"):
        import_features(_manifest(IDS), tmp_path, tmp_path / "out", progress=False)


def test_store_file_layout(tmp_path):
    """The HDF5 layout other tools rely on (docs/architecture.md)."""
    write_store(tmp_path / "a.h5", ["x_0_10"], _features(1), ATTRS)
    with h5py.File(tmp_path / "a.h5", "r") as h5:
        assert h5["features"].dtype == np.float32 and h5["features"].shape == (1, 10, 4)
        assert list(h5["video_ids"].asstr()[...]) == ["x_0_10"]
        assert set(h5.attrs) >= {"role", "extractor", "settings", "weights", "avvp_version"}
    assert read_attrs(tmp_path / "a.h5")["extractor"] == "vggish"
