"""VALOR's teachers as extractors: front ends, tiny random teachers built here, stores, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from avvp.cli import main
from avvp.infra.errors import InputError, MissingWeightsError
from avvp.core.feature_store import read_extra, read_store, write_store
from avvp.stages.teachers import audio as A

from media import write_media

SECONDS = 2


# -- front ends ----------------------------------------------------------------------------------
def test_prompts_are_verbatim_in_llp_order():
    from avvp.core.classes import LLP_CLASSES
    from avvp.stages.teachers.prompts import CLAP_NAMES, CLAP_THRESHOLDS, CLIP_PROMPTS, CLIP_THRESHOLDS, clap_prompts

    assert len(CLIP_PROMPTS) == len(CLAP_NAMES) == len(LLP_CLASSES) == 25
    assert CLIP_PROMPTS[14] == "A photo of a vaccum cleaner." and CLIP_PROMPTS[20] == "A photo of a acoustic guiter."
    assert clap_prompts()[12] == "This is a sound of chicken, rooster"
    assert CLIP_THRESHOLDS[0] == 20 and CLAP_THRESHOLDS[5] == -2 and sum(CLAP_THRESHOLDS) == 44


def test_clip_frame_indices_round_half_to_even():
    from avvp.stages.extractors.clip_image import frame_indices

    assert frame_indices(80, 10).tolist() == [0, 9, 18, 26, 35, 44, 53, 61, 70, 79]
    assert frame_indices(16, 2).tolist() == [0, 15]


def test_squash_resize_has_no_antialias_and_no_crop():
    from torch.nn.functional import interpolate

    from avvp.stages.extractors.clip_image import squash

    frames = torch.randint(0, 256, (2, 300, 400, 3), dtype=torch.uint8)  # downscaled
    out = squash(frames)
    assert out.shape == (2, 3, 224, 224) and out.dtype == torch.float32
    x = frames.permute(0, 3, 1, 2).float() / 255
    plain = interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=False)
    torch.testing.assert_close(out, plain)
    smooth = interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
    assert (out - smooth).abs().max() > 1e-3  # the antialiased resize would differ


def test_segments_repeat_pad_and_nearest_resampling():
    assert A.segment_windows(480005, 10)[:2] == [(0, 48000), (48000, 96000)]
    assert A.segment_windows(25, 10) == [(0, 2), (2, 4), (5, 7), (8, 10), (10, 12), (12, 14), (15, 17),
                                         (18, 20), (20, 22), (22, 24)]  # round(2.5) = 2, round(7.5) = 8
    seg = np.arange(1, 8, dtype=np.float32)
    padded = A.repeat_pad(seg, 30)
    assert padded.tolist() == list(range(1, 8)) * 4 + [0, 0]
    x = np.arange(5, dtype=np.float32)
    assert A.nearest_resample(x, 9).tolist() == [0, 0, 1, 2, 2, 2, 3, 4, 4]  # 0.5→0, 1.5→2, 2.5→2, 3.5→4
    assert A.int16_round_trip(np.array([2.0, -1.0, 0.5], np.float32)).tolist() == pytest.approx(
        [1.0, -1.0, 16383 / 32767])
    assert A.LogMel()(torch.zeros(1, 480000)).shape == (1, 1001, 64)


def test_token_map_order_against_a_hand_built_grid():
    """The (64, C) map: row f·32 + j is frequency half f and time step j (chunk j // 8 of the mel
    image, column j % 8)."""
    from transformers import ClapAudioConfig
    from transformers.models.clap.modeling_clap import ClapAudioEncoder

    c = 3
    grid = torch.zeros(1, 64, c)  # 8 × 8 tokens, row major, value = 100·row + column
    for r in range(8):
        for col in range(8):
            grid[0, r * 8 + col] = 100 * r + col
    # transformers' regrouping of the final layer, run on the hand-built tokens
    enc = ClapAudioEncoder(ClapAudioConfig(patch_embeds_hidden_size=8, depths=[1, 1, 1, 1],
                                           num_attention_heads=[1, 1, 1, 1], hidden_size=64))
    enc.norm = torch.nn.Identity()
    enc.layers = torch.nn.ModuleList([_Const(grid)])
    out = enc(torch.zeros(1, 1, 1001, 64), is_longer=None).last_hidden_state
    rows = A.token_map(out)[0, :, 0]
    expected = [100 * ((j // 8) * 2 + f) + j % 8 for f in range(2) for j in range(32)]
    assert rows.tolist() == expected


class _Const(torch.nn.Module):
    def __init__(self, tokens):
        super().__init__()
        self.tokens = tokens

    def forward(self, hidden, dims, *args):
        return (self.tokens, self.tokens, (8, 8, 8, 8))


# -- tiny teachers, written here ------------------------------------------------------------------
def _byte_chars() -> list[str]:
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


def write_clip_teacher(folder: Path) -> Path:
    from transformers import CLIPConfig, CLIPModel

    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": 256 + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": 512, "<|endoftext|>": 513})
    config = CLIPConfig(projection_dim=8,
                        text_config=dict(vocab_size=514, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=512,
                                         eos_token_id=513, pad_token_id=513),
                        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                           num_attention_heads=2, patch_size=32, image_size=224))
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder


def tiny_clap(fusion: bool = True):
    from transformers import ClapConfig, ClapModel

    audio = dict(enable_fusion=fusion, fusion_type="aff_2d" if fusion else None, patch_embeds_hidden_size=8,
                 depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 1, 1], hidden_size=64, projection_dim=8)
    text = dict(vocab_size=260, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=80, projection_dim=8)
    torch.manual_seed(0)
    return ClapModel(ClapConfig(audio_config=audio, text_config=text, projection_dim=8))


def write_roberta_tokenizer(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    vocab.update({c: 4 + i for i, c in enumerate(_byte_chars()[:255])})
    vocab["<mask>"] = 259
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder


def write_clap_teacher(folder: Path, fusion: bool = True) -> Path:
    tiny_clap(fusion).save_pretrained(folder)
    return write_roberta_tokenizer(folder)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("teachers")
    return {"clip": write_clip_teacher(d / "clip"), "clap": write_clap_teacher(d / "clap")}


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {f"v{i}": write_media(d / f"v{i}.mp4", seconds=SECONDS, colour=60 * i, freq=300 + 200 * i,
                                 rate=44100) for i in range(3)}


def _settings(teachers, **extra) -> dict:
    return {"batch_size": 4, "prefetch": 1, "checkpoint_every": 1,
            "clip_image": {"weights": str(teachers["clip"])}, "clap_audio": {"weights": str(teachers["clap"])},
            **extra}


def test_clip_teacher_scores_are_scaled_cosines(teachers, clip_files):
    from avvp.stages.extractors import create_extractor

    ext = create_extractor({"weights": str(teachers["clip"])}, "clip_image")
    assert ext.logit_scale == pytest.approx(float(np.exp(np.log(1 / 0.07))), rel=1e-4)  # read from the model
    units = ext.load(clip_files["v0"], SECONDS)
    assert units.shape == (SECONDS, 3, 224, 224)
    features, extras = ext.assemble(ext.forward(units))
    assert features.shape == (SECONDS, 8) and extras["scores"].shape == (SECONDS, 25)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(extras["scores"], ext.logit_scale * features @ ext.text.numpy().T, rtol=1e-4)


def test_clip_teacher_samples_all_frames_ffmpeg_writes(teachers):
    """VALOR samples round(linspace(0, N − 1, 10)) over every frame ``ffmpeg -r 8`` wrote: with
    N = 81 frames 0, 9, 18, 27, 36, 44, 53, 62, 71, 80 (not first 80 spread frames, then 10 of those)."""
    from types import SimpleNamespace

    from avvp.stages.extractors import create_extractor

    ext = create_extractor({"weights": str(teachers["clip"])}, "clip_image")
    assert ext.request(10.0)["n_frames"] is None and ext.request(10.0)["fps"] == 8
    frames = np.repeat(np.arange(81, dtype=np.uint8)[:, None, None, None], 3, axis=3)
    frames = np.broadcast_to(frames, (81, 6, 8, 3))  # frame i is all i
    streams = SimpleNamespace(need_frames=lambda: SimpleNamespace(frames=frames))
    units = ext.units_from(streams, "clip.mp4", 10.0)
    picked = (units[:, 0, 0, 0] * 255).round().int().tolist()
    assert picked == [0, 9, 18, 27, 36, 44, 53, 62, 71, 80]


def test_clap_teacher_scores_and_token_map(teachers, clip_files):
    from avvp.stages.extractors import create_extractor

    ext = create_extractor({"weights": str(teachers["clap"])}, "clap_audio")
    units = ext.load(clip_files["v1"], SECONDS)
    assert units.shape == (SECONDS + 1, 480000)
    half = units[0, :48000]  # one second, repeated
    torch.testing.assert_close(units[0, 48000:96000], half)
    features, extras = ext.assemble(ext.forward(units))
    assert features.shape == (64, 64) and extras["scores"].shape == (SECONDS, 25)
    assert np.abs(extras["scores"]).max() <= ext.logit_scale * (1 + 1e-5)


def test_store_round_trip_with_scores(tmp_path):
    from avvp.core.feature_store import merge_stores, store_writer

    attrs = {"role": "clip_image", "extractor": "clip_vit_l14", "settings": "{}", "weights": "w"}
    parts = []
    for k in range(2):
        path = tmp_path / f"{k}.h5"
        with store_writer(path, 2, 10, 4, attrs, extras={"scores": (10, 25)}) as w:
            for i in range(2):
                w.write(i, f"v{k}{i}", np.full((10, 4), k), extra={"scores": np.full((10, 25), 10 * k + i)})
        parts.append(path)
    merge_stores(parts, tmp_path / "all.h5")
    assert read_extra(tmp_path / "all.h5", "scores", ["v11", "v00"])[:, 0, 0].tolist() == [11, 0]
    assert read_store(tmp_path / "all.h5")[1].shape == (4, 10, 4)
    write_store(tmp_path / "old.h5", ["a"], np.zeros((1, 2, 3)), attrs)  # stores without extras still work
    with pytest.raises(InputError, match="no 'scores' dataset"):
        read_extra(tmp_path / "old.h5", "scores")


def test_extract_resumes_and_records_failures(tmp_path, teachers, clip_files):
    from avvp.stages.extraction import extract_job

    d = tmp_path / "in"
    d.mkdir()
    (d / "zero.mp4").write_bytes(b"")
    paths = [clip_files["v0"], d / "zero.mp4", clip_files["v1"], clip_files["v2"]]
    ids = [f"vid{i:08d}_0_{SECONDS}" for i in range(4)]
    man = tmp_path / "manifest.parquet"
    pd.DataFrame({"video_id": ids, "start": 0.0, "end": float(SECONDS), "path": [str(p) for p in paths]}
                 ).to_parquet(man)
    settings = _settings(teachers)
    roles = ["clip_image", "clap_audio"]
    outs = {r: tmp_path / "full" / f"{r}.h5" for r in roles}
    fails = {r: tmp_path / "full" / f"{r}.parquet" for r in roles}
    extract_job(pd.read_parquet(man), roles, settings, 0, 1, outs, fails, progress=False)

    class Stop(Exception):
        pass

    def stop(count, vid):
        if count == 2:
            raise Stop

    args = ["extract", "--manifest", str(man), "--role", "clip_image", "--settings", json.dumps(settings),
            "--shards", "1", "--out", str(tmp_path / "part.h5"), "--failures", str(tmp_path / "part.parquet"),
            "--no-progress"]
    from avvp.stages.extraction import read_manifest

    with pytest.raises(Stop):
        extract_job(read_manifest(man), ["clip_image"], settings, 0, 1, {"clip_image": tmp_path / "part.h5"},
                    {"clip_image": tmp_path / "part.parquet"}, on_video=stop, progress=False)
    assert main(args) == 0
    full_ids, full, _ = read_store(outs["clip_image"])
    part_ids, part, attrs = read_store(tmp_path / "part.h5")
    assert part_ids == full_ids == [ids[0], ids[2], ids[3]]
    np.testing.assert_allclose(part, full, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(read_extra(tmp_path / "part.h5", "scores"), read_extra(outs["clip_image"], "scores"),
                               rtol=1e-5, atol=1e-5)
    assert float(attrs["logit_scale"]) > 1
    assert pd.read_parquet(tmp_path / "part.parquet")["video_id"].tolist() == [ids[1]]
    ids_a, maps, _ = read_store(outs["clap_audio"])
    assert maps.shape == (3, 64, 64) and read_extra(outs["clap_audio"], "scores").shape == (3, SECONDS, 25)


# -- bad input ----------------------------------------------------------------------------------
def test_missing_weights_are_named(tmp_path):
    from avvp.stages.teachers.models import load_clap, load_clip

    with pytest.raises(MissingWeightsError, match="no/such/clip"):
        load_clip(str(tmp_path / "no/such/clip"))
    with pytest.raises(MissingWeightsError, match="nobody/no-such-model"):
        load_clip("nobody/no-such-model")
    with pytest.raises(MissingWeightsError, match="630k-fusion-best.pt"):
        load_clap("nobody/laion_clap/630k-fusion-best.pt")


def test_wrong_model_files_are_named(tmp_path, teachers):
    from avvp.stages.teachers.clap_keys import FUSION_KEY
    from avvp.stages.teachers.models import load_clap, load_clip

    with pytest.raises(InputError, match="a clap model, not CLIP"):
        load_clip(str(teachers["clap"]))
    with pytest.raises(InputError, match="a clip model, not CLAP"):
        load_clap(str(teachers["clip"]))
    unfused = write_clap_teacher(tmp_path / "unfused", fusion=False)
    with pytest.raises(InputError, match="non-fusion"):
        load_clap(str(unfused))
    laion = _laion_state(tiny_clap())
    torch.save({"state_dict": laion}, tmp_path / "laion.pt")
    with pytest.raises(InputError, match="LAION-CLAP checkpoint, not a transformers CLIP"):
        load_clip(str(tmp_path / "laion.pt"))
    torch.save({"state_dict": {k: v for k, v in laion.items() if k != "module." + FUSION_KEY}}, tmp_path / "nofusion.pt")
    with pytest.raises(InputError, match="nofusion.pt.*non-fusion"):
        load_clap(str(tmp_path / "nofusion.pt"), str(teachers["clap"]))


def test_text_encoder_mismatch_is_named(tmp_path, teachers):
    from avvp.stages.teachers.models import load_clap, load_clip

    with pytest.raises(InputError, match="text-encoder mismatch"):
        load_clip(str(teachers["clip"]), text_encoder=str(teachers["clap"]))  # RoBERTa-like vocab
    with pytest.raises(InputError, match="text-encoder mismatch"):
        load_clap(str(teachers["clap"]), text_encoder=str(teachers["clip"]))
    laion = _laion_state(tiny_clap())
    laion["module.text_projection.2.weight"] = torch.zeros(5, 8)
    laion["module.text_projection.2.bias"] = torch.zeros(5)
    torch.save({"state_dict": laion}, tmp_path / "text.pt")
    with pytest.raises(InputError, match="text.pt.*text-encoder mismatch"):
        load_clap(str(tmp_path / "text.pt"), str(teachers["clap"]))


def _laion_state(model) -> dict[str, torch.Tensor]:
    """A ClapModel's tensors under LAION-CLAP's original names (the inverse of the loader's renaming)."""
    import re

    block = {"layernorm_before.": "norm1.", "layernorm_after.": "norm2.",
             "attention.self.relative_position_bias_table": "attn.relative_position_bias_table",
             "attention.output.dense.": "attn.proj.", "intermediate.dense.": "mlp.fc1.", "output.dense.": "mlp.fc2."}
    out, qkv = {}, {}
    for key, value in model.state_dict().items():
        if key.startswith("text_model."):
            out["module.text_branch." + key[len("text_model."):]] = value
            continue
        m = re.fullmatch(r"(audio|text)_projection\.linear([12])\.(weight|bias)", key)
        if m:
            out[f"module.{m.group(1)}_projection.{0 if m.group(2) == '1' else 2}.{m.group(3)}"] = value
            continue
        if not key.startswith("audio_model.audio_encoder."):
            out["module." + key] = value
            continue
        rest = key[len("audio_model.audio_encoder."):].replace("batch_norm.", "bn0.")
        m = re.fullmatch(r"(layers\.\d+\.blocks\.\d+\.)attention\.self\.(query|key|value)\.(weight|bias)", rest)
        if m:
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = value
            continue
        for new, old in block.items():
            rest = re.sub(r"(blocks\.\d+\.)" + re.escape(new), r"\g<1>" + old, rest)
        out["module.audio_branch." + rest] = value
    for (prefix, kind), parts in qkv.items():
        out[f"module.audio_branch.{prefix}attn.qkv.{kind}"] = torch.cat([parts[p] for p in ("query", "key", "value")])
    out["module.audio_branch.head.weight"] = torch.zeros(3)  # not used: skipped
    return out


def test_original_laion_checkpoint_loads_into_the_same_model(tmp_path, teachers):
    from avvp.stages.teachers.models import load_clap

    model = tiny_clap()
    torch.save({"epoch": 1, "state_dict": _laion_state(model)}, tmp_path / "630k-fusion-best.pt")
    from transformers import ClapConfig

    import avvp.stages.teachers.models as M

    tiny = model.config.to_dict()
    original = M.CLAP_FUSION
    M.CLAP_FUSION = {"audio_config": tiny["audio_config"], "text_config": tiny["text_config"], "projection_dim": 8}
    try:
        loaded = load_clap(str(tmp_path / "630k-fusion-best.pt"), str(teachers["clap"]))
    finally:
        M.CLAP_FUSION = original
    assert isinstance(loaded.model.config, ClapConfig)
    own = model.state_dict()
    for key, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, own[key], msg=key)


def test_original_checkpoint_text_tower_is_roberta_base_with_its_layer_norm_eps(tmp_path, teachers):
    """LAION-CLAP's text branch is ``RobertaModel`` with roberta-base's config (LayerNorm eps 1e-5);
    the text tower avvp builds for the original checkpoint must compute the same pooled output
    (``ClapTextConfig`` alone would give eps 1e-12)."""
    from transformers import RobertaConfig, RobertaModel

    import avvp.stages.teachers.models as M

    model = tiny_clap()
    torch.save({"state_dict": _laion_state(model)}, tmp_path / "630k-fusion-best.pt")
    tiny = model.config.to_dict()
    text = {k: v for k, v in tiny["text_config"].items() if k != "layer_norm_eps"}
    original = M.CLAP_FUSION
    M.CLAP_FUSION = {"audio_config": {**original["audio_config"], **tiny["audio_config"]},
                     "text_config": {**original.get("text_config", {}), **text}, "projection_dim": 8}
    try:
        loaded = M.load_clap(str(tmp_path / "630k-fusion-best.pt"), str(teachers["clap"])).model
    finally:
        M.CLAP_FUSION = original
    roberta = RobertaModel(RobertaConfig(**{k: text[k] for k in (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
        "max_position_embeddings", "type_vocab_size", "pad_token_id", "bos_token_id", "eos_token_id")},
        layer_norm_eps=1e-5)).eval()
    missing, _ = roberta.load_state_dict(model.text_model.state_dict(), strict=False)
    assert not missing
    ids = torch.tensor([[0, 40, 41, 42, 2, 1, 1]])
    mask = (ids != 1).long()
    with torch.no_grad():
        ours = loaded.text_model(input_ids=ids, attention_mask=mask).pooler_output
        reference = roberta(input_ids=ids, attention_mask=mask).pooler_output
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)


def test_auto_batch_is_the_cpu_default_or_sized_to_free_gpu_memory():
    """``batch_size: auto``: the CPU batch on the CPU, the extractor's GPU sizing on CUDA (a stand-in
    extractor here: no GPU in the tests), and the sizing arithmetic itself."""
    from types import SimpleNamespace

    from avvp.infra.errors import ConfigError
    from avvp.stages.extraction import CPU_BATCH, feature_settings, role_batch
    from avvp.stages.extractors.teacher import batch_for_memory

    settings = feature_settings({"batch_size": {"audio": 20, "frame": 20, "clip": 5, "clip_image": "auto",
                                                "clap_audio": "auto"}})
    assert role_batch(settings, "clip_image") == CPU_BATCH["clip_image"]
    cpu = SimpleNamespace(device=torch.device("cpu"), gpu_batch=lambda: pytest.fail("sized on the CPU"))
    assert role_batch(settings, "clap_audio", cpu) == CPU_BATCH["clap_audio"]
    gpu = SimpleNamespace(device=torch.device("cuda"), gpu_batch=lambda: 77)
    assert role_batch(settings, "clap_audio", gpu) == 77
    with pytest.raises(ConfigError, match=r"batch_size"):  # the settings definition: teachers only
        feature_settings({"batch_size": {"audio": "auto"}})
    with pytest.raises(ConfigError, match=r"batch_size \(audio\): auto is for the teachers"):
        role_batch({"batch_size": {"audio": "auto"}}, "audio")
    # 1 unit peaks at 3 GB, 2 units at 5 GB: 2 GB per unit + 1 GB fixed; 70 % of 40 GB free fits 13.
    gb = 2 ** 30
    assert batch_for_memory(40 * gb, 3 * gb, 5 * gb) == 13
    assert batch_for_memory(gb, 3 * gb, 5 * gb) == 1            # never below one
    assert batch_for_memory(80 * gb, gb, gb + 1000, limit=64) == 64
