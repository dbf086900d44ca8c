"""The pooled frame store (avvp.core.pooled_store) and the loader that reads the stores into one tensor each."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

from avvp.cli import main
from avvp.core.data import load_features
from avvp.infra.errors import InputError
from avvp.core.feature_store import read_attrs, write_store
from avvp.core.pooled_store import POOLED, frame_store

IDS = [f"vid{i:08d}_0_10" for i in range(7)]


def _attrs(role):
    return {"role": role, "extractor": f"test:{role}", "settings": "{}", "weights": "random:0"}


@pytest.fixture
def stores(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"audio": rng.normal(size=(7, 10, 4)), "frame": rng.normal(size=(7, 80, 6)),
              "clip": rng.normal(size=(7, 10, 3))}
    for role, array in arrays.items():
        write_store(tmp_path / f"{role}.h5", IDS, array.astype(np.float32), _attrs(role))
    return tmp_path, arrays


def test_pooled_store_gives_exactly_what_the_loader_pooled(stores):
    folder, arrays = stores
    order = [IDS[5], IDS[0], IDS[1], IDS[2], IDS[6]]     # out of order, with gaps
    before = load_features(folder, order)
    assert frame_store(folder) == folder / "frame.h5"
    assert main(["pool-frames", "--features-dir", str(folder), "--no-progress"]) == 0
    assert frame_store(folder) == folder / POOLED
    after = load_features(folder, order)
    for role in ("audio", "frame", "clip"):
        assert torch.equal(getattr(before, role), getattr(after, role)), role
    assert before.attrs == after.attrs            # the pooled store is the same features
    expected = arrays["frame"][[5, 0, 1, 2, 6]].reshape(5, 10, 8, 6).mean(axis=2)
    np.testing.assert_allclose(after.frame.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(after.audio, torch.from_numpy(arrays["audio"][[5, 0, 1, 2, 6]].astype(np.float32)))
    assert "pooled_from" in read_attrs(folder / POOLED)


def test_a_pooled_store_of_another_frame_store_is_not_used(stores, caplog):
    folder, arrays = stores
    main(["pool-frames", "--features-dir", str(folder), "--no-progress"])
    new = (arrays["frame"] + 1).astype(np.float32)
    write_store(folder / "frame.h5", IDS, new, _attrs("frame"))
    os.utime(folder / "frame.h5", ns=(1, 1))     # even with an older time stamp
    with caplog.at_level(logging.WARNING):
        assert frame_store(folder) == folder / "frame.h5"
    assert "was not made from the current frame.h5" in caplog.text
    got = load_features(folder, IDS).frame.numpy()
    np.testing.assert_allclose(got, new.reshape(7, 10, 8, 6).mean(axis=2), rtol=1e-6, atol=1e-6)
    (folder / "frame.h5").unlink()                # the pooled store alone is enough
    assert frame_store(folder) == folder / POOLED


def test_missing_videos_are_named_or_left_out(stores, caplog):
    folder, _ = stores
    write_store(folder / "clip.h5", IDS[:5], np.zeros((5, 10, 3), np.float32), _attrs("clip"))
    with pytest.raises(InputError, match=rf"clip\.h5: 2 of 7 requested videos have no features: {IDS[5]}"):
        load_features(folder, IDS)
    with caplog.at_level(logging.WARNING):
        got = load_features(folder, IDS, missing="skip", what="training videos")
    assert got.video_ids == IDS[:5] and got.frame.shape == (5, 10, 6)
    assert "2 of 7 training videos have no features" in caplog.text


def test_pooling_needs_whole_segments(stores, capsys):
    folder, _ = stores
    write_store(folder / "frame.h5", IDS, np.zeros((7, 75, 6), np.float32), _attrs("frame"))
    assert main(["pool-frames", "--features-dir", str(folder), "--no-progress"]) == 1
    assert "75 frame rows per video is not a multiple of the 10" in capsys.readouterr().err
    assert not (folder / POOLED).exists()
