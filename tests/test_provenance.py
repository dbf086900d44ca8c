"""Provenance records, checkpoints from other code, and the plain messages of issue 20's defects.

The CLI tests reuse the fault matrix's uninterrupted reference run (``reference`` fixture).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from test_fault_matrix import BY_NAME, _argv, _run_here

from avvp.core import provenance_read
from avvp.infra import provenance
from avvp.infra.errors import InputError, StorageError


def test_every_kind_of_output_carries_its_record(reference):
    ref = reference["ref"]
    outputs = ["media_features/audio.h5", "models/base/model.pt", "models/base/checkpoints/last.pt",
               "models/base/history.parquet", "refine/labels.parquet", "ratios/ratios.parquet",
               "ratios/noise_ratios.npz", "pred/test.npz", "eval/baseline/seed1/test/metrics.json",
               "tables/table1.md", "imported/audio.h5", "parsed/summary.csv"]
    for name in outputs:
        record = provenance_read.read(ref / name)
        assert record["format"] == "avvp-provenance" and record["code"].startswith("sha256:"), name
        assert record["avvp_version"] and "git_commit" in record, name
    model = provenance_read.read(ref / "models/base/model.pt")
    assert model["command"] == "train" and model["seed"] == 1
    assert model["settings"]["train"]["epochs"] == 3
    assert model["inputs"]["manifest.parquet"] == provenance.sha256_file(ref / "manifest.parquet")
    assert set(model["inputs"]) == {"manifest.parquet", "features/audio.h5", "features/frame.h5",
                                    "features/clip.h5"}
    table = provenance_read.read(ref / "tables/table1.md")
    assert set(table["inputs"]) == {"eval/baseline/seed1/test/metrics.json", "eval/ma/seed1/test/metrics.json"}
    # the official npz keeps exactly its two arrays: its record is a sidecar
    assert (ref / "ratios/noise_ratios.npz.provenance.json").exists()
    assert (ref / "ratios/noise_ratios.npz.provenance.json").exists()


def test_avvp_provenance_prints_and_checks(reference, tmp_path, capsys):
    ref = reference["ref"]
    rc, _ = _run_here(ref, ["provenance", "pred/test.npz", "--check"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "command: avvp --threads 1 predict" in out and "models/base/model.pt" in out
    work = tmp_path / "w"
    shutil.copytree(ref / "eval", work / "eval")
    metrics = work / "eval/baseline/seed1/test/metrics.json"
    metrics.write_text(metrics.read_text() + " ")  # rewritten without its record
    with pytest.raises(InputError, match="describes other bytes than metrics.json"):
        provenance_read.read(metrics)
    with pytest.raises(InputError, match="holds no provenance record"):
        provenance_read.read(reference["feats"] / "vggish" / os.listdir(reference["feats"] / "vggish")[0])


def test_checkpoint_from_other_code_is_set_aside_and_retrained(reference, tmp_path, caplog):
    """``--forcerun train`` after an upgrade: model.pt is gone, checkpoints/last.pt came from other
    code. It is set aside (not deleted), the log says why, training starts at epoch 1 and ends
    with the uninterrupted run's model."""
    ref = reference["ref"]
    work = tmp_path / "w"
    shutil.copytree(ref, work, ignore=shutil.ignore_patterns("parsed", "clips", "imported"))
    model_dir = work / "models/base"
    (model_dir / "model.pt").unlink()
    state = torch.load(model_dir / "checkpoints/last.pt", weights_only=True)
    state["identity"]["code"] = "sha256:" + "0" * 64
    state["identity"]["git_commit"] = "1" * 40
    torch.save(state, model_dir / "checkpoints/last.pt")
    with caplog.at_level(logging.INFO, logger="avvp.stages.train"):
        rc, err = _run_here(work, _argv(BY_NAME["train"], reference["feats"]))
    assert rc == 0, err
    text = caplog.text
    assert "not resuming from models/base/checkpoints/last.pt: it was made by other code" in text
    assert "git 111111111111" in text and "set-aside/1.pt" in text and " after epoch" not in text
    assert torch.load(model_dir / "checkpoints/set-aside/1.pt", weights_only=True)["epoch"] == 3
    assert (model_dir / "model.pt").read_bytes() == (ref / "models/base/model.pt").read_bytes()


def test_checkpoint_with_other_settings_says_so(reference, tmp_path, caplog):
    work = tmp_path / "w"
    shutil.copytree(reference["ref"], work, ignore=shutil.ignore_patterns("parsed", "clips", "imported"))
    (work / "models/base/model.pt").unlink()
    argv = _argv(BY_NAME["train"], reference["feats"])
    argv[argv.index("--seed") + 1] = "2"
    with caplog.at_level(logging.WARNING, logger="avvp.stages.train"):
        assert _run_here(work, argv)[0] == 0
    assert "it was made with another seed" in caplog.text and "other code" not in caplog.text


def test_disk_full_in_torch_save_is_one_plain_error(reference, tmp_path, monkeypatch):
    """torch.save on a full disk raises "[enforce fail at inline_container.cc:672] unexpected
    pos"; avvp says no space left, names the file, and keeps the last checkpoint."""
    from avvp.infra import atomic
    from avvp.core.checkpoint import save_torch

    target = tmp_path / "checkpoints" / "last.pt"
    save_torch(target, {"format": "x", "epoch": 1})
    before = target.read_bytes()

    def full_save(obj, fh, *args, **kwargs):
        fh.write(b"PK\x03\x04 partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos 4416 vs 4310")

    class Full:
        f_bavail, f_frsize = 0, 4096

    monkeypatch.setattr(torch, "save", full_save)
    monkeypatch.setattr(atomic.os, "statvfs", lambda path: Full())
    with pytest.raises(StorageError) as caught:
        save_torch(target, {"format": "x", "epoch": 2})
    message = str(caught.value)
    assert message.startswith(f"{target}: no space left on device while writing it")
    assert "unexpected pos" in message and "rerun the same command" in message
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.pt"]  # no temporary file


def test_pool_frames_names_a_truncated_audio_store(reference, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(reference["ref"] / "media_features", work / "media_features")
    audio = work / "media_features" / "audio.h5"
    data = audio.read_bytes()
    audio.write_bytes(data[: len(data) // 2])
    rc, err = _run_here(work, ["pool-frames", "--features-dir", "media_features", "--no-progress"])
    assert rc == 1 and "Traceback" not in err
    assert "media_features/audio.h5: not a readable HDF5 feature store" in err


def test_refused_checkpoint_names_the_blocked_global(tmp_path):
    from avvp.core.checkpoint import load_model

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo unpickled",))

    torch.save({"model": Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(InputError) as caught:
        load_model(tmp_path / "evil.pt")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'evil.pt'}: cannot read as a torch checkpoint: refused")
    assert "posix.system" in message and "weights_only" not in message


def test_orphan_dense_rows_are_named(tmp_path, caplog):
    from avvp.core.annotations import read_dense

    path = tmp_path / "AVVP_eval_audio.csv"
    path.write_text("filename\tonset\toffset\tevent_labels\n"
                    "known000000_0_10\t0\t3\tDog\nghost000000_0_10\t1\t2\tDog\n")
    with caplog.at_level(logging.WARNING, logger="avvp.core.annotations"):
        events = read_dense(path, ["Dog"], video_ids=["known000000_0_10"])
    assert len(events) == 1
    assert "line 3: ghost000000_0_10 (Dog)" in caplog.text


def test_fault_spec_and_stale_temporary_files(tmp_path, monkeypatch):
    from avvp.infra import faults
    from avvp.infra.atomic import write_text

    monkeypatch.setenv("AVVP_FAULT", "enospc:write@b.txt:2")
    faults.reset()
    write_text(tmp_path / "a.txt", "a")
    write_text(tmp_path / "b.txt", "1")
    with pytest.raises(StorageError, match="b.txt: no space left on device"):
        write_text(tmp_path / "b.txt", "2")
    assert (tmp_path / "b.txt").read_text() == "1"
    faults.reset()
    monkeypatch.delenv("AVVP_FAULT")
    dead = tmp_path / ".c.txt.999999999.abc.tmp.txt"  # a writer that no longer runs
    alive = tmp_path / f".c.txt.{os.getppid()}.abc.tmp.txt"  # one that does
    dead.write_text("x")
    alive.write_text("x")
    write_text(tmp_path / "c.txt", "c")
    assert not dead.exists() and alive.exists()


def test_installed_copy_without_git_has_the_same_code_fingerprint(tmp_path):
    """avvp run from a copy outside any git checkout (a wheel install): no commit, same code id."""
    import subprocess
    import sys

    import avvp

    shutil.copytree(Path(avvp.__file__).parent, tmp_path / "avvp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = "from avvp.infra import provenance as p; print(p.git_commit(), p.code_fingerprint(), p.__file__)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=120)
    commit, fingerprint, where = proc.stdout.split()
    assert where.startswith(str(tmp_path)) and commit == "None"
    assert fingerprint == provenance.code_fingerprint()
