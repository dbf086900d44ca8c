"""The stand-in LLP feature release (avvp.stages.rehearsal): layout, truth, planted signal, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avvp.core.annotations import FULL_FILE, SPLIT_FILES, dense_matrix, read_llp, youtube_id
from avvp.cli import main
from avvp.infra.errors import ConfigError, InputError
from avvp.stages.import_features import OFFICIAL
from avvp.stages.rehearsal import RECORD, choose_videos, directions, release_settings, write_release

SETTINGS = {"videos": 60, "seed": 5}


@pytest.fixture(scope="module")
def release(llp_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("rehearsal") / "rel"
    assert main(["rehearsal", "release", "--annotations", str(llp_dir), "--out", str(out),
                 "--settings", json.dumps(SETTINGS), "--no-progress"]) == 0
    return out


def _truth(ann, modality, ids):
    """(N, C, T) truth: the real dense events (val/test) or the drawn training truth."""
    events = {"audio": (ann.audio, ann.train_audio), "visual": (ann.visual, ann.train_visual)}[modality]
    return dense_matrix(events[0], ids, ann.classes) | dense_matrix(events[1], ids, ann.classes)


def _load(out, role, vid):
    return np.load(out / "feats" / OFFICIAL[role][0] / f"{youtube_id(vid)}.npy")


def test_layout_and_annotation_files(release, llp_dir):
    ann = read_llp(release / "annotations")
    real = read_llp(llp_dir)
    ids = ann.videos["video_id"].tolist()
    assert len(ids) == 60 and ann.split("val").shape[0] >= 1 and ann.split("test").shape[0] >= 1
    for role, (folder, shape) in OFFICIAL.items():
        files = sorted(p.stem for p in (release / "feats" / folder).iterdir())
        assert files == sorted(youtube_id(v) for v in ids)
        array = _load(release, role, ids[0])
        assert array.dtype == np.float32 and array.shape == shape
    # the subset's files keep the real rows (weak labels, dense truth) of the chosen videos
    assert (release / "annotations" / FULL_FILE).read_text().splitlines()[0] == "filename\tevent_labels"
    evaluated = ann.videos.loc[ann.videos["split"] != "train", "video_id"]
    for modality in ("audio", "visual"):
        assert np.array_equal(ann.dense(modality, evaluated), real.dense(modality, evaluated))
    assert set(ann.videos["video_id"]) <= set(real.videos["video_id"])


def test_training_truth_splits_every_weak_label(release):
    ann = read_llp(release / "annotations")
    train = ann.split("train")["video_id"].tolist()
    weak = ann.weak(train)
    audio, visual = _truth(ann, "audio", train), _truth(ann, "visual", train)
    present = audio.any(axis=2) | visual.any(axis=2)
    assert np.array_equal(present, weak > 0)          # every weak label somewhere, nothing else
    audible, visible = audio.any(axis=2)[weak > 0], visual.any(axis=2)[weak > 0]
    assert (audible & ~visible).any() and (visible & ~audible).any() and (audible & visible).any()
    assert set(ann.train_audio["video_id"]) <= set(train)


def test_the_planted_signal(release):
    """Rows of a present segment lie `signal` further along the class direction than the others."""
    ann = read_llp(release / "annotations")
    s = release_settings(SETTINGS)
    dirs = directions(s["seed"], len(ann.classes))
    ids = ann.videos["video_id"].tolist()
    truth = {m: _truth(ann, m, ids) for m in ("audio", "visual")}
    for role, modality in (("audio", "audio"), ("frame", "visual"), ("clip", "visual")):
        on, off = [], []
        for i, vid in enumerate(ids):
            x = _load(release, role, vid).reshape(10, -1, dirs[role].shape[1]).mean(axis=1)
            proj = x @ dirs[role].T                     # (T, C)
            mask = truth[modality][i].T.astype(bool)
            on.extend(proj[mask])
            off.extend(proj[~mask])
        gap = np.mean(on) - np.mean(off)
        assert abs(gap - s["signal"][role]) < 0.25 * s["signal"][role], (role, gap)


def test_resume_keeps_files_and_refuses_other_settings(release, llp_dir, tmp_path):
    import shutil

    out = tmp_path / "rel"
    shutil.copytree(release, out)
    ann = read_llp(out / "annotations")
    vid = ann.videos["video_id"].iloc[3]
    before = _load(out, "frame", vid)
    (out / "feats" / "res152" / f"{youtube_id(vid)}.npy").unlink()
    report = write_release(llp_dir, out, SETTINGS, progress=False)
    assert (report.written, report.kept) == (1, 59)
    assert np.array_equal(_load(out, "frame", vid), before)
    assert json.loads((out / RECORD).read_text())["complete"] is True
    with pytest.raises(InputError, match="other settings"):
        write_release(llp_dir, out, {**SETTINGS, "seed": 6}, progress=False)


def test_choose_videos_and_settings(llp_dir):
    ann = read_llp(llp_dir)
    ids = choose_videos(ann, 300, 0)
    assert len(ids) == 300 and ids == [v for v in ann.videos["video_id"] if v in set(ids)]
    counts = ann.videos.set_index("video_id").loc[ids, "split"].value_counts()
    assert set(counts.index) == set(SPLIT_FILES) and counts["train"] > counts["test"] > counts["val"]
    assert choose_videos(ann, None, 0) == ann.videos["video_id"].tolist()
    with pytest.raises(ConfigError, match="rehearsal.noise"):
        release_settings({"noise": -1})
    with pytest.raises(ConfigError, match="unknown key 'rehearsal.videoz'"):
        release_settings({"videoz": 3})
