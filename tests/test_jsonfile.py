"""avvp.infra.json_reader.read_json: the content, or an error naming the file and the problem."""

from __future__ import annotations

import pytest

from avvp.stages.paper_tables import read_overall
from avvp.infra.errors import InputError
from avvp.infra.json_reader import read_json


def test_reads_json(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"x": [1, 2]}')
    assert read_json(path) == {"x": [1, 2]}


def test_missing_file_names_what_and_hint(tmp_path):
    with pytest.raises(InputError, match=r"nothing\.json: plan not found \(make it\)$"):
        read_json(tmp_path / "nothing.json", "plan", " (make it)")


def test_bad_json_names_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "x": 1,\n  oops\n}')
    with pytest.raises(InputError, match=r"bad\.json, line 3: not valid JSON"):
        read_json(path)


def test_binary_file_is_not_text(tmp_path):
    path = tmp_path / "bin.json"
    path.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(InputError, match=r"bin\.json: not a text file"):
        read_json(path)


def test_metrics_reader_uses_it(tmp_path):
    path = tmp_path / "metrics.json"
    with pytest.raises(InputError, match="metrics file not found"):
        read_overall(path)
    path.write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        read_overall(path)
