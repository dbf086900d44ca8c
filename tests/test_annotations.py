"""The LLP annotation reader: real files parse to the figures of official.md §a; bad input is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avvp.core.annotations import (
    LLP_SHA256,
    dense_matrix,
    parse_window,
    read_dense,
    read_llp,
    write_tables,
)
from avvp.core.classes import LLP_CLASSES, write_classes
from avvp.infra.errors import InputError
from avvp.infra.provenance import sha256


@pytest.fixture(scope="module")
def llp(llp_dir):
    return read_llp(llp_dir)


def test_files_are_the_official_ones(llp_dir):
    for name, digest in LLP_SHA256.items():
        assert sha256(llp_dir / name) == digest, name


def test_fetch_writes_the_marker_file_last(llp_dir, tmp_path, monkeypatch):
    """AVVP_train.csv (the fetch rule's declared output) never exists before the other files."""
    import urllib.request

    from avvp.stages.fetch_annotations import fetch_annotations

    opened = []
    real = urllib.request.urlopen

    def die_on_the_last(url, *args, **kwargs):
        opened.append(url.rsplit("/", 1)[1])
        if len(opened) == len(LLP_SHA256):
            raise KeyboardInterrupt  # killed while fetching the last file
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", die_on_the_last)
    with pytest.raises(KeyboardInterrupt):
        fetch_annotations(llp_dir.as_uri(), tmp_path / "a")
    assert opened[-1] == "AVVP_train.csv"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(set(LLP_SHA256) - {"AVVP_train.csv"})


def test_split_sizes_and_order(llp, llp_dir):
    counts = llp.videos["split"].value_counts().to_dict()
    assert counts == {"train": 10000, "val": 649, "test": 1200}
    full = pd.read_csv(llp_dir / "AVVP_dataset_full.csv", sep="\t")
    assert list(full["filename"]) == list(llp.videos["video_id"])
    assert llp.videos["youtube_id"].str.len().eq(11).all()
    assert llp.videos["youtube_id"].is_unique


def test_labels_per_video_histograms(llp):
    n = llp.videos.assign(n=llp.videos["labels"].map(len)).groupby("split")["n"].value_counts()
    assert n["train"].to_dict() == {1: 4032, 2: 5879, 3: 89}
    assert n["val"].to_dict() == {1: 212, 2: 367, 3: 56, 4: 14}
    # official.md counts raw names (403 / 650); 'Clapping,Clapping' is one label once de-duplicated
    assert n["test"].to_dict() == {1: 404, 2: 649, 3: 118, 4: 25, 5: 3, 7: 1}


def test_train_videos_per_class(llp):
    weak = llp.weak(llp.split("train")["video_id"])
    expected = [4988, 624, 528, 761, 192, 343, 455, 218, 299, 602, 186, 1172, 437,
                1457, 495, 146, 445, 224, 411, 587, 503, 99, 430, 291, 164]
    assert weak.sum(0).astype(int).tolist() == expected


def test_repeated_label_and_fractional_times(llp):
    row = llp.videos.set_index("video_id").loc["LcFWKgFphXI_20_30"]
    assert row["labels"] == ["Clapping"]
    frac = llp.videos[llp.videos["start"] % 1 != 0]
    assert len(frac) == 5 and set(frac["split"]) == {"train"}
    assert parse_window("AP0061o0Nvk_101.8_111.8") == (101.8, 111.8)
    assert parse_window("a_b-c_d_e_f_30_40") == (30.0, 40.0)


def test_test_set_empty_truth_counts(llp):
    ids = llp.split("test")["video_id"]
    empty = {m: int((llp.dense(m, ids).sum((1, 2)) == 0).sum()) for m in ("audio", "visual", "av")}
    assert empty == {"audio": 6, "visual": 121, "av": 174}


def _runs(matrix: np.ndarray) -> int:
    padded = np.pad(matrix.astype(int), ((0, 0), (0, 0), (1, 0)))
    return int((np.diff(padded, axis=2) == 1).sum())


def test_test_set_event_counts_after_merging(llp):
    ids = llp.split("test")["video_id"]
    got = {m: (_runs(llp.dense(m, ids)), int((llp.dense(m, ids).sum(2) > 0).sum()))
           for m in ("audio", "visual", "av")}
    assert got == {"audio": (2638, 2083), "visual": (1625, 1444), "av": (1617, 1330)}


def test_pre2024_version_lacks_three_audio_events(llp, llp_dir):
    old = read_llp(llp_dir, version="pre2024")
    assert len(llp.audio) - len(old.audio) == 3
    ids = ["JfZEqeLZqWk_30_40", "KvIjsmANkxI_10_20"]
    new_m, old_m = llp.dense("audio", ids), old.dense("audio", ids)
    speech, cat = LLP_CLASSES.index("Speech"), LLP_CLASSES.index("Cat")
    assert new_m[0, speech].tolist() == [1, 1, 1, 1, 0, 0, 0, 1, 1, 1]
    assert old_m[0, speech].sum() == 0 and new_m[1, cat, 0] == 1 and old_m[1, cat, 0] == 0
    assert old.version == "pre2024"


def test_manifest_and_tables_written(llp, tmp_path):
    paths = write_tables(llp, tmp_path)
    man = pd.read_parquet(paths["manifest"])
    assert list(man.columns) == ["video_id", "youtube_id", "start", "end", "split", "labels", "path"]
    assert len(man) == 11849 and list(man.loc[0, "labels"]) == llp.videos.loc[0, "labels"]
    assert len(pd.read_parquet(paths["audio"])) == len(llp.audio)


def test_clip_paths_are_found(llp_dir, sample_clip):
    ann = read_llp(llp_dir, clips=sample_clip.parent)
    row = ann.videos.set_index("video_id").loc["BjCEufrlXm4_20_30"]
    assert row["path"] == str(sample_clip) and row["split"] == "train"
    assert ann.videos["path"].notna().sum() == 1


# ---- small hand-made folders -------------------------------------------------------------

CLASSES = ["Alpha", "Beta", "Gamma"]


def _folder(tmp_path: Path, audio_rows: str, weak_test: str = "vid00000001_0_10\tAlpha,Beta\n") -> Path:
    write_classes(tmp_path, CLASSES)
    (tmp_path / "AVVP_train.csv").write_text("filename\tevent_labels\nvid00000000_0_10\tGamma\n")
    (tmp_path / "AVVP_val_pd.csv").write_text("filename\tevent_labels\n")
    (tmp_path / "AVVP_test_pd.csv").write_text("filename\tevent_labels\n" + weak_test)
    (tmp_path / "AVVP_eval_audio.csv").write_text("filename\tonset\toffset\tevent_labels\n" + audio_rows)
    (tmp_path / "AVVP_eval_visual.csv").write_text("filename\tonset\toffset\tevent_labels\n")
    return tmp_path


def test_rows_with_onset_after_offset_are_dropped_with_a_warning(tmp_path, caplog):
    rows = ("vid00000001_0_10\t0\t3\tAlpha\n"
            "vid00000001_0_10\t9\t2\tBeta\n"     # line 3: onset > offset
            "vid00000001_0_10\t5\t5\tBeta\n"     # empty: dropped, counted, not warned
            "vid00000001_0_10\t7\t6\tGamma\n")   # line 5
    folder = _folder(tmp_path, rows)
    with caplog.at_level("INFO", logger="avvp.core.annotations"):
        ann = read_llp(folder)
    assert ann.audio[["class", "onset", "offset"]].values.tolist() == [["Alpha", 0, 3]]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    path = folder / "AVVP_eval_audio.csv"
    assert len(warned) == 2
    assert warned[0].startswith(f"{path}, line 3: onset 9 is after offset 2")
    assert warned[1].startswith(f"{path}, line 5: onset 7 is after offset 6")


def test_merging_degenerate_and_orphan_rows(tmp_path):
    rows = ("vid00000001_0_10\t0\t3\tAlpha\n"
            "vid00000001_3\t4\t6\tAlpha\n"  # orphan (no such video)
            "vid00000001_0_10\t3\t5\tAlpha\n"  # touches the first: merges
            "vid00000001_0_10\t4\t7\tAlpha\n"  # overlaps: merges
            "vid00000001_0_10\t8\t8\tBeta\n"  # degenerate
            "vid00000001_0_10\t9\t2\tBeta\n"  # onset > offset
            "vid00000001_0_10\t8\t10\tBeta\n")
    ann = read_llp(_folder(tmp_path, rows))
    assert ann.audio[["class", "onset", "offset"]].values.tolist() == [["Alpha", 0, 7], ["Beta", 8, 10]]
    m = ann.dense("audio", ["vid00000001_0_10"])
    assert m[0, 0].tolist() == [1] * 7 + [0] * 3 and m[0, 1].tolist() == [0] * 8 + [1, 1]
    assert m[0, 2].sum() == 0


@pytest.mark.parametrize(
    ("audio_rows", "weak_test", "problem", "line"),
    [
        ("vid00000001_0_10\t0\t3\tDelta\n", None, "unknown class name 'Delta'", 2),
        ("vid00000001_0_10\t0\t3\n", None, "malformed row", 2),
        ("vid00000001_0_10\t0\tx\tAlpha\n", None, "not numbers", 2),
        ("", "vid00000001_0_10\tAlpha,Zeta\n", "unknown class name 'Zeta'", 2),
        ("", "short_0_10\tAlpha\n", "is not '<11-character id>_<start>_<end>'", 2),
        ("", "vid00000001_0_10\tAlpha\nvid00000001_0_10\tBeta\n", "listed twice", None),
    ],
)
def test_bad_rows_name_file_line_and_problem(tmp_path, audio_rows, weak_test, problem, line):
    folder = _folder(tmp_path, audio_rows, weak_test) if weak_test else _folder(tmp_path, audio_rows)
    with pytest.raises(InputError) as err:
        read_llp(folder)
    assert problem in str(err.value)
    assert err.value.line == line
    expected_file = "AVVP_test_pd.csv" if weak_test else "AVVP_eval_audio.csv"
    assert Path(err.value.path).name == expected_file


def test_missing_column_is_named(tmp_path):
    folder = _folder(tmp_path, "")
    (folder / "AVVP_eval_visual.csv").write_text("filename\tonset\tevent_labels\n")
    with pytest.raises(InputError, match=r"AVVP_eval_visual.csv, line 1: missing column\(s\) offset"):
        read_llp(folder)


def test_missing_file_and_unknown_version(tmp_path):
    folder = _folder(tmp_path, "")
    (folder / "AVVP_val_pd.csv").unlink()
    with pytest.raises(InputError, match="AVVP_val_pd.csv: file not found"):
        read_llp(folder)
    with pytest.raises(InputError, match="unknown annotation version"):
        read_llp(folder, version="1999")


def test_dense_matrix_clips_to_segments():
    events = pd.DataFrame({"video_id": ["a", "a"], "class": ["Beta", "Alpha"],
                           "onset": [5, -1], "offset": [12, 1]})
    m = dense_matrix(events, ["a", "b"], CLASSES, n_segments=8)
    assert m.shape == (2, 3, 8)
    assert m[0, 1].tolist() == [0] * 5 + [1] * 3 and m[0, 0].tolist() == [1] + [0] * 7
    assert m[1].sum() == 0


def test_read_dense_without_video_filter(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("filename\tonset\toffset\tevent_labels\nx_1\t0\t2\tAlpha\n")
    table = read_dense(path, CLASSES)
    assert table.values.tolist() == [["x_1", "Alpha", 0, 2]]
