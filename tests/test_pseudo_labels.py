"""The pseudo-label store: round trip, and errors that name the file."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from avvp.infra.errors import InputError
from avvp.core.pseudo_labels import PseudoLabels, read_pseudo_labels, write_pseudo_labels


def _labels(seed=0, n=4, t=10, c=3):
    rng = np.random.default_rng(seed)
    return PseudoLabels("visual", [f"vid{i:08d}_0_10" for i in range(n)], ["A", "B", "C"][:c],
                        (rng.random((n, t, c)) > 0.7).astype(np.uint8), {"teacher": "test"})


def test_round_trip_keeps_videos_without_positives(tmp_path):
    labels = _labels()
    labels.labels[2] = 0
    write_pseudo_labels(tmp_path / "visual.parquet", labels)
    back = read_pseudo_labels(tmp_path / "visual.parquet", modality="visual", classes=["A", "B", "C"])
    assert back.video_ids == labels.video_ids
    np.testing.assert_array_equal(back.labels, labels.labels)
    assert back.source == {"teacher": "test"}
    np.testing.assert_array_equal(back.select([labels.video_ids[3], labels.video_ids[0]]),
                                  labels.labels[[3, 0]])


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "visual.parquet"
    write_pseudo_labels(path, _labels())
    with pytest.raises(InputError, match="visual.parquet.*not audio"):
        read_pseudo_labels(path, modality="audio")
    with pytest.raises(InputError, match="classes"):
        read_pseudo_labels(path, classes=["A", "B", "X"])
    with pytest.raises(InputError, match="no visual pseudo labels"):
        read_pseudo_labels(path).select(["missing_0_10"], path)
    with pytest.raises(InputError, match="not found"):
        read_pseudo_labels(tmp_path / "none.parquet")
    # a value outside {0, 1}
    table = pq.read_table(path)
    table = table.set_column(2, "A", pa.array(np.full(table.num_rows, 2, np.uint8)))
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(InputError, match=r"bad.parquet.*outside \{0, 1\}"):
        read_pseudo_labels(tmp_path / "bad.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"junk")
    with pytest.raises(InputError, match="not a Parquet file"):
        read_pseudo_labels(tmp_path / "junk.parquet")
