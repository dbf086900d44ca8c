"""avvp download: yt-dlp against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from avvp.cli import main
from avvp.stages.download import (
    FAILURES, PROGRESS, TABLE, clip_window, download_settings, download_videos, find_download, load_targets,
    present_files, read_download_table, read_failures,
)
from avvp.infra.errors import ConfigError

PRESENT = "BjCEufrlXm4"  # the sample clip's id; the `server` fixture (conftest.py) serves it
MISSING = "Zz_missing0"  # 11 characters, never served (404)
# The served file is the 10-s sample; as a "source video" its window here is [3, 13).
PRESENT_VID, MISSING_VID = f"{PRESENT}_3_13", f"{MISSING}_5_15"


def _targets() -> pd.DataFrame:
    return pd.DataFrame({
        "video_id": [PRESENT_VID, MISSING_VID],
        "youtube_id": [PRESENT, MISSING],
        "start": [3.0, 5.0],
        "end": [13.0, 15.0],
    })


def test_download_present_and_missing(server, tmp_path, sample_clip):
    template, root, hits = server
    out = tmp_path / "clips"
    report = download_videos(_targets(), out, {"url_template": template, "retries": 0},
                             progress=False)
    assert (report.downloaded, report.failed) == (1, 1)
    got = out / f"{PRESENT}.mp4"
    # stored as is: byte-identical to what the server holds, not re-encoded
    assert got.read_bytes() == sample_clip.read_bytes()
    table = read_download_table(out)
    assert table.to_dict("records") == [{
        "video_id": PRESENT_VID, "youtube_id": PRESENT, "file": f"{PRESENT}.mp4",
        "start": 3.0, "end": 13.0, "window": "source"}]
    failures = pd.read_parquet(out / FAILURES)
    assert list(failures.columns) == ["video_id", "stage", "reason"]
    assert failures["video_id"].tolist() == [MISSING_VID]
    assert failures["stage"].tolist() == ["download"]
    assert "404" in failures["reason"].iloc[0]
    # the window of a downloaded full video is [start, end) in the file; a pre-cut clip starts at 0
    assert clip_window(got, 3, 13) == (3.0, 13.0)
    precut = tmp_path / "other" / f"{PRESENT}.mp4"
    precut.parent.mkdir()
    shutil.copy(sample_clip, precut)
    assert clip_window(precut, 3, 13) == (0.0, 10.0)


def test_clip_window_rereads_a_table_rewritten_elsewhere(tmp_path):
    from avvp.infra.atomic import write_parquet

    folder = tmp_path / "clips"
    folder.mkdir()
    clip = folder / f"{PRESENT}.mp4"
    assert clip_window(clip, 3, 13) == (0.0, 10.0)   # no table yet: a pre-cut clip
    row = {"video_id": PRESENT_VID, "youtube_id": PRESENT, "file": clip.name, "start": 3.0,
           "end": 13.0, "window": "source"}
    write_parquet(folder / TABLE, pd.DataFrame([row]))   # as another process would
    assert clip_window(clip, 3, 13) == (3.0, 13.0)
    write_parquet(folder / TABLE, pd.DataFrame([{**row, "start": 30.0, "end": 40.0}]))
    assert clip_window(clip, 3, 13) == (30.0, 40.0)


def test_rerun_resumes_and_retries_only_when_asked(server, tmp_path):
    template, root, hits = server
    out = tmp_path / "clips"
    settings = {"url_template": template, "retries": 0}
    download_videos(_targets(), out, settings, progress=False)
    first = len(hits)
    assert first >= 2

    again = download_videos(_targets(), out, settings, progress=False)
    assert (again.downloaded, again.present, again.failed, again.skipped_failed) == (0, 1, 0, 1)
    assert len(hits) == first  # nothing fetched
    assert len(again.table) == 1 and len(again.failures) == 1

    # the missing video appears on the server: only --retry-failed fetches it
    shutil.copy(root / f"{PRESENT}.mp4", root / f"{MISSING}.mp4")
    retried = download_videos(_targets(), out, settings, retry_failed=True, progress=False)
    assert (retried.downloaded, retried.present, retried.failed) == (1, 1, 0)
    assert read_failures(out).empty
    assert sorted(read_download_table(out)["youtube_id"]) == sorted([PRESENT, MISSING])


def test_interrupted_run_leaves_no_finished_table(server, tmp_path, monkeypatch):
    """downloads.parquet (the workflow's output) appears only when a run ends; an interrupted
    run keeps its progress in downloads.partial.parquet, which the next run reads back."""
    import avvp.stages.download.many_videos as download  # where download_videos looks up download_one

    template, root, _ = server
    shutil.copy(root / f"{PRESENT}.mp4", root / f"{MISSING}.mp4")
    out = tmp_path / "clips"
    real = download.download_one
    calls = []

    def fetch_then_die(youtube_id, *args):
        calls.append(youtube_id)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a kill in the middle of the run
        return real(youtube_id, *args)

    monkeypatch.setattr(download, "download_one", fetch_then_die)
    with pytest.raises(KeyboardInterrupt):
        download_videos(_targets(), out, {"url_template": template, "retries": 0}, progress=False)
    assert not (out / TABLE).exists()
    assert pd.read_parquet(out / PROGRESS)["video_id"].tolist() == [PRESENT_VID]
    monkeypatch.setattr(download, "download_one", real)
    # the rerun asks only for the other video: the first one's window is not forgotten
    report = download_videos(_targets().iloc[1:], out, {"url_template": template, "retries": 0},
                             progress=False)
    assert report.downloaded == 1 and not (out / PROGRESS).exists()
    assert read_download_table(out)["video_id"].tolist() == [PRESENT_VID, MISSING_VID]


def test_unusable_file_is_a_check_failure(server, tmp_path):
    template, root, _ = server
    (root / f"{MISSING}.mp4").write_bytes(b"\x00" * 2000)  # served, but not a video
    out = tmp_path / "clips"
    targets = _targets()
    targets.loc[0, "start"] = 60.0  # the 10-s sample cannot reach a window starting at 60 s
    report = download_videos(targets, out, {"url_template": template, "retries": 0}, progress=False)
    assert report.downloaded == 0 and report.failed == 2
    stages = dict(zip(report.failures["video_id"], report.failures["stage"]))
    assert set(stages.values()) == {"check"}
    why = dict(zip(report.failures["video_id"], report.failures["reason"]))
    assert "starts at 60" in why[PRESENT_VID]
    assert not list(out.glob(f"{MISSING}.*")) and not list(out.glob(f"{PRESENT}.*"))


def test_cli_download_from_manifest(server, tmp_path, llp_dir):
    template, root, _ = server
    videos = load_targets(llp_dir, ids=[PRESENT, "AP0061o0Nvk"])
    # the served sample is already cut to its window: as a source video it spans [0, 10)
    videos.loc[videos["youtube_id"] == PRESENT, ["start", "end"]] = [0.0, 10.0]
    manifest = tmp_path / "manifest.parquet"
    videos.to_parquet(manifest)
    out = tmp_path / "clips"
    settings = f'{{"url_template": "{template}", "retries": 0, "splits": ["train"]}}'
    rc = main(["download", str(manifest), "--out", str(out), "--settings", settings, "--no-progress"])
    assert rc == 0  # failures are tabled, the run itself succeeds
    assert read_download_table(out)["video_id"].tolist() == [f"{PRESENT}_20_30"]
    assert read_failures(out)["video_id"].tolist() == ["AP0061o0Nvk_101.8_111.8"]
    assert (out / TABLE).exists()


def test_partial_and_table_files_are_not_downloads(tmp_path):
    a1, a2 = "aaaaaaaaaa1", "aaaaaaaaaa2"
    for name in (f"{a1}.mp4.part", f"{a2}.f137.mp4", f"{PRESENT}.webm", "downloads.parquet",
                 "downloads.partial.parquet", ".a3.mp4.tmp"):
        (tmp_path / name).write_bytes(b"x")
    assert present_files(tmp_path) == {PRESENT: tmp_path / f"{PRESENT}.webm",
                                       f"{a2}.f137": tmp_path / f"{a2}.f137.mp4"}
    assert find_download(tmp_path, a1) is None and find_download(tmp_path, a2) is None
    assert find_download(tmp_path, PRESENT) == tmp_path / f"{PRESENT}.webm"


def test_load_targets_filters(llp_dir):
    test = load_targets(llp_dir, splits=["test"])
    assert len(test) == 1200 and set(test["split"]) == {"test"}
    assert load_targets(llp_dir, ids=[PRESENT])["video_id"].tolist() == [f"{PRESENT}_20_30"]
    assert len(load_targets(llp_dir, limit=3)) == 3


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="url_template"):
        download_settings({"url_template": "https://example.org/watch"})
    with pytest.raises(ConfigError, match="unknown setting 'download.formats'"):
        download_settings({"formats": "best"})


# ------------------------------------------------------------------------ LLP configurations

REPO = Path(__file__).resolve().parents[1]
LLP_CONFIGS = ("config/llp.yaml", "config/llp_features.yaml")


@pytest.mark.parametrize("name", LLP_CONFIGS + ("config.yaml",))
def test_configs_validate_against_the_schema(name):
    import yaml
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / name).read_text())
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    assert "{id}" in config.get("download", {"url_template": "{id}"})["url_template"]


def test_llp_configs_carry_the_official_recipe():
    import yaml

    for name in LLP_CONFIGS:
        c = yaml.safe_load((REPO / name).read_text())
        assert c["data"]["source"] == "llp" and c["data"]["annotation_version"] in ("pre2024", "current")
        t = c["train"]
        assert (t["epochs"], t["select"], t["gate"], t["batch_size"], t["lr"]) == (12, "last", "ma", 16, 3e-4)
        assert (t["step_size"], t["gamma"], t["contrastive"]["tau"]) == (10, 0.1, 0.2)
        assert c["evaluate"]["gate"] == "ma"
        f = c["features"]
        assert (f["frame"]["size"], f["frame"]["crop"], f["clip"]["size"]) == (256, 224, 112)
    assert yaml.safe_load((REPO / LLP_CONFIGS[1]).read_text())["features"]["official"]


def test_schema_rejects_a_template_without_id():
    import yaml
    from snakemake.utils import validate
    from snakemake.exceptions import WorkflowError

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["download"]["url_template"] = "https://example.org/watch"
    with pytest.raises(WorkflowError):
        validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("name, stage", [(LLP_CONFIGS[0], "download"), (LLP_CONFIGS[1], "import_features")])
def test_llp_configs_dry_run(name, stage):
    """The whole LLP workflow plans offline (the annotations are fetched only when it runs)."""
    import shutil
    import subprocess

    if shutil.which("snakemake") is None:
        pytest.skip("snakemake is not on PATH")
    done = subprocess.run(["snakemake", "-n", "--nolock", "--configfile", name, "--cores", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    text = done.stdout + done.stderr
    for job in ("fetch_annotations", "manifest", stage, "train", "evaluate", "table"):
        assert f"rule {job}:" in text, job
    other = {"download": "import_features", "import_features": "download"}[stage]
    assert f"rule {other}:" not in text
    assert "/models/han/seed1/model.pt" in text  # Table 1's HAN row: the han variant (HAN recipe)
