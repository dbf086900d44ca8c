"""Feature store (write/read/merge, atomic writes, partial files) and import of official features."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from avvp import __version__
from avvp.infra.errors import InputError
from avvp.core.feature_store import (PartialFile, merge_stores, read_attrs, read_ids, read_store,
                                store_writer, write_store)
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


def test_store_file_layout(tmp_path):
    """The HDF5 layout other tools rely on (docs/architecture.md)."""
    write_store(tmp_path / "a.h5", ["x_0_10"], _features(1), ATTRS)
    with h5py.File(tmp_path / "a.h5", "r") as h5:
        assert h5["features"].dtype == np.float32 and h5["features"].shape == (1, 10, 4)
        assert list(h5["video_ids"].asstr()[...]) == ["x_0_10"]
        assert set(h5.attrs) >= {"role", "extractor", "settings", "weights", "avvp_version"}
    assert read_attrs(tmp_path / "a.h5")["extractor"] == "vggish"
