"""VALOR: model (sizes, keys, shared initial layers, sequential encoder, CLAP/CLIP branches by
role), loss, schedule, selection, released-checkpoint loading, and a tiny train -> predict ->
evaluate run with pseudo-label files."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avvp.core.annotations import read_llp, write_tables
from avvp.core.checkpoint import load_model
from avvp.infra.errors import ConfigError, InputError
from avvp.stages.evaluate import evaluate_predictions
from avvp.experiments import get_variant, table_rows, variant_sections
from avvp.core.feature_store import write_store
from avvp.core.model import HAN, count_parameters
from avvp.stages.predict import predict_split
from avvp.core.pseudo_labels import PseudoLabels, write_pseudo_labels
from avvp.stages.train import _improves, make_scheduler, run_training, train_settings
from avvp.core.valor.model import VALOR, segment_pool
from avvp.core.valor.training import valor_loss, warmup_cosine_lr
from avvp.core.valor.variants import VALOR_VARIANTS

pytestmark = pytest.mark.usefixtures("one_thread")

OFFICIAL = {"valor": (5_096_523, 34), "valor_plus": (5_052_235, 82), "valor_pp": (4_888_395, 82)}


def _official(name: str, **kw) -> VALOR:
    v = VALOR_VARIANTS[name]
    teacher = {"audio_dim": 768, "frame_dim": 768} if v.audio_role == "clap_audio" else {}
    return VALOR(d_model=v.d_model, num_layers=v.num_layers, audio_role=v.audio_role,
                 frame_role=v.frame_role, **teacher, **kw)


def _official_keys(layers: int) -> list[str]:
    """The official network's state-dict keys, written out from its module list."""
    keys = [f"{m}.{p}" for m in ("fc_prob", "fc_frame_att", "fc_av_att", "fc_a", "fc_v", "fc_st", "fc_fusion")
            for p in ("weight", "bias")]
    for i in range(layers):
        for attn in ("self_attn", "cm_attn"):
            keys += [f"hat_encoder.layers.{i}.{attn}.{p}" for p in
                     ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")]
        keys += [f"hat_encoder.layers.{i}.{m}.{p}" for m in ("linear1", "linear2", "norm1", "norm2")
                 for p in ("weight", "bias")]
    return keys + [f"hat_encoder.final_norm_{m}.{p}" for m in "av" for p in ("weight", "bias")]


# ---------------------------------------------------------------------------------- model

@pytest.mark.parametrize("name", list(OFFICIAL))
def test_official_sizes_keys_and_parameter_counts(name):
    model = _official(name)
    total, n_keys = OFFICIAL[name]
    assert count_parameters(model) == total
    state = model.state_dict()
    assert len(state) == n_keys
    assert sorted(state) == sorted(_official_keys(VALOR_VARIANTS[name].num_layers))
    d = VALOR_VARIANTS[name].d_model
    assert state["hat_encoder.layers.0.self_attn.in_proj_weight"].shape == (3 * d, d)
    assert state["hat_encoder.layers.0.linear1.weight"].shape == (1024, d)
    assert state["fc_a.weight"].shape == (d, 768 if name == "valor_pp" else 128)


def test_layers_start_identical_and_the_encoder_is_sequential():
    torch.manual_seed(0)
    model = VALOR(audio_dim=6, frame_dim=5, clip_dim=4, n_classes=3, d_model=8, nhead=2,
                  dim_feedforward=16, num_layers=3).eval()
    layers = [layer.state_dict() for layer in model.hat_encoder.layers]
    assert all(torch.equal(layers[0][k], other[k]) for other in layers[1:] for k in layers[0])
    a, v = torch.randn(2, 10, 8), torch.randn(2, 10, 8)
    one = VALOR(audio_dim=6, frame_dim=5, clip_dim=4, n_classes=3, d_model=8, nhead=2,
                dim_feedforward=16, num_layers=1).eval()
    layer = one.hat_encoder.layers[0]
    with torch.no_grad():
        seq_a, seq_v = one.hat_encoder(a, v)
        par_v = layer(v, a)                  # HAN: the visual call reads the original audio
        want_v = layer(v, layer(a, v))       # VALOR: the updated audio
    torch.testing.assert_close(seq_a, layer(a, v).detach())
    torch.testing.assert_close(seq_v, want_v)
    assert (seq_v - par_v).abs().max() > 1e-3


def test_clap_branch_pools_the_upsampled_map_to_segments():
    torch.manual_seed(1)
    model = VALOR(audio_dim=3, frame_dim=5, clip_dim=4, n_classes=3, d_model=4, nhead=2,
                  dim_feedforward=8, audio_role="clap_audio").eval()
    audio = torch.randn(2, 64, 3)
    with torch.no_grad():
        got = model.embed_audio(audio, 10)
        grid = audio.transpose(1, 2).reshape(2, 3, 2, 32)        # token f*32+j -> half f, step j
        up = F.interpolate(grid, size=(2, 1024), mode="bicubic", align_corners=False)
        proj = model.fc_a(up.permute(0, 2, 3, 1)).mean(dim=1)   # (B, 1024, d)
    assert got.shape == (2, 10, 4)
    for t in range(10):
        lo, hi = math.floor(102.4 * t), math.ceil(102.4 * (t + 1))
        torch.testing.assert_close(got[:, t], proj[:, lo:hi].mean(dim=1))
    # The token order matters: swapping the two frequency halves changes nothing after the mean,
    # reversing time does.
    swapped = torch.cat([audio[:, 32:], audio[:, :32]], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model.embed_audio(swapped, 10), got)
        assert not torch.allclose(model.embed_audio(audio.flip(1), 10), got)


@pytest.mark.parametrize("length, n_out", [(1024, 10), (1024, 7), (30, 10), (7, 10)])
def test_segment_pool_is_adaptive_avg_pool_with_the_same_gradient(length, n_out):
    torch.manual_seed(2)
    x = torch.randn(3, 4, length, requires_grad=True)
    ours = x.detach().clone().requires_grad_()
    g = torch.randn(3, 4, n_out)
    want = F.adaptive_avg_pool1d(x, n_out)
    got = segment_pool(ours.transpose(1, 2).contiguous().transpose(1, 2), n_out)  # non-contiguous, as in the model
    want.backward(g)
    got.backward(g)
    assert torch.equal(got, want) and torch.equal(ours.grad, x.grad)


def _graph_names(fn, seen=None) -> set[str]:
    seen = set() if seen is None else seen
    if fn is not None and fn not in seen:
        seen.add(fn)
        for nxt, _ in fn.next_functions:
            _graph_names(nxt, seen)
    return {type(f).__name__ for f in seen}


def test_clap_branch_backward_has_no_nondeterministic_cuda_kernel():
    """The CUDA backward of adaptive average pooling is refused under deterministic algorithms
    (train.deterministic): the CLAP branch must not put it in the graph."""
    model = VALOR(audio_dim=3, frame_dim=5, clip_dim=4, n_classes=3, d_model=4, nhead=2,
                  dim_feedforward=8, audio_role="clap_audio")
    names = _graph_names(model.embed_audio(torch.randn(2, 64, 3), 10).grad_fn)
    assert not [n for n in names if "AdaptiveAvgPool" in n], names


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_valor_pp_trains_on_cuda_with_deterministic_algorithms():
    from avvp.infra.seeding import deterministic_algorithms

    model = _official("valor_pp").cuda().train()
    x = (torch.randn(2, 64, 768), torch.randn(2, 10, 768), torch.randn(2, 10, 512))
    with deterministic_algorithms(True):
        out = model(*(t.cuda() for t in x))
        out.frame_logits.sum().backward()
    assert model.fc_a.weight.grad is not None


def test_branches_follow_the_declared_roles_not_the_shapes():
    valor = VALOR(audio_dim=768, frame_dim=768, clip_dim=4, n_classes=3, d_model=8, nhead=2,
                  dim_feedforward=8).eval()  # standard roles, teacher-sized inputs
    with pytest.raises(ValueError, match="audio features have 64 rows, expected 10"):
        valor(torch.randn(1, 64, 768), torch.randn(1, 10, 768), torch.randn(1, 10, 4))
    clip_role = VALOR(audio_dim=6, frame_dim=5, clip_dim=4, n_classes=3, d_model=8, nhead=2,
                      dim_feedforward=8, frame_role="clip_image").eval()
    with pytest.raises(ValueError, match="clip_image features have 80 rows"):
        clip_role(torch.randn(1, 10, 6), torch.randn(1, 80, 5), torch.randn(1, 10, 4))
    frames = VALOR(audio_dim=6, frame_dim=5, clip_dim=4, n_classes=3, d_model=8, nhead=2,
                   dim_feedforward=8).eval()
    x = torch.randn(1, 80, 5)
    with torch.no_grad():  # 8 frames per segment pooled after fc_v = the pooled store's rows
        torch.testing.assert_close(frames.embed_frames(x, 10),
                                   frames.embed_frames(x.reshape(1, 10, 8, 5).mean(2), 10))


# ------------------------------------------------------------------------ loss, schedule

def test_loss_against_a_hand_computation():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 2, 4))
    p = np.array([[0.0, 0.3, 1.0, 0.8], [0.5, 0.2, 0.9, 1e-9]])
    y = np.array([[0, 1, 1, 0], [1, 0, 1, 0]], dtype=float)
    seg_a, seg_v = (rng.integers(0, 2, size=(2, 3, 4)).astype(float) for _ in range(2))

    class Out:
        global_prob = torch.tensor(p, dtype=torch.float64)
        frame_logits = torch.tensor(logits)

    terms = valor_loss(Out, torch.tensor(y), torch.tensor(seg_a), torch.tensor(seg_v))
    pc = np.clip(p, 1e-7, 1 - 1e-7)
    video = -np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))

    def bcel(z, t):
        q = 1 / (1 + np.exp(-z))
        return -np.mean(t * np.log(q) + (1 - t) * np.log(1 - q))

    want = video + bcel(logits[:, :, 0], seg_a) + bcel(logits[:, :, 1], seg_v)
    assert terms.total.item() == pytest.approx(want, rel=1e-10)
    assert terms.global_.item() == pytest.approx(video, rel=1e-10)


def test_learning_rate_schedule_values():
    lr = [warmup_cosine_lr(e, 1e-4, 1e-6, 10, 60) for e in range(1, 61)]
    assert lr[:10] == pytest.approx([1e-5 * e for e in range(1, 11)], rel=1e-12)
    for epoch, want in ((11, 9.99023e-5), (35, 5.05e-5), (59, 1.09768e-6), (60, 1e-6)):
        assert lr[epoch - 1] == pytest.approx(want, rel=1e-5)
    plus = warmup_cosine_lr(35, 3e-4, 3e-6, 10, 60)
    assert plus == pytest.approx(3 * 5.05e-5, rel=1e-5)


def _official_rate(e: int, lr_max: float, lr_min: float, warmup: int = 10, epochs: int = 60) -> float:
    """valor.md §7.2, in the official code's order of operations (main_avvp.py:38-45)."""
    if e < warmup:
        return e / warmup * lr_max
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos((e - warmup) / (epochs - warmup) * math.pi))


@pytest.mark.parametrize("lr_max, lr_min", [(1e-4, 1e-6), (3e-4, 3e-6)])
def test_the_scheduler_sets_the_official_rate_bit_for_bit(lr_max, lr_min):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=lr_max)
    scheduler = make_scheduler(optimizer, {"schedule": "warmup_cosine", "lr": lr_max, "lr_min": lr_min,
                                           "warmup_epochs": 10, "epochs": 60})
    got = []
    for _ in range(60):  # the rate of each epoch, read before it as the loop does
        got.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    want = [_official_rate(e, lr_max, lr_min) for e in range(1, 61)]
    assert [warmup_cosine_lr(e, lr_max, lr_min, 10, 60) for e in range(1, 61)] == want
    assert got == want  # exact: a factor times lr_max (LambdaLR) is one ulp off in some epochs


def test_strict_selection_keeps_the_earlier_epoch_and_starts_from_zero():
    best = {"score": 0.5}
    assert not _improves(0.5, best, "earlier") and _improves(0.5, best, "later")
    assert _improves(0.51, best, "earlier")
    assert not _improves(0.0, None, "earlier") and _improves(0.0, None, "later")


def test_registry_recipes_and_settings_checks():
    sections = variant_sections("valor_plus", {"model": {"d_model": 512}, "train": {"lr": 3e-4}})
    assert sections["model"]["num_layers"] == 4 and sections["model"]["d_model"] == 256
    t = sections["train"]
    assert (t["lr"], t["lr_min"], t["betas"], t["weight_decay"], t["clip_grad_norm"], t["select_ties"]) == \
        (3e-4, 3e-6, [0.5, 0.999], 1e-3, 1.0, "earlier")
    assert VALOR_VARIANTS["valor_pp"].official_seed == 87 and get_variant("valor_ma").labels_from == "ma"
    assert [r.variant for r in table_rows("methods", {"teacher_features": True})][-1] == "valor_pp"
    assert "valor_pp" not in [r.variant for r in table_rows("methods", {})]
    with pytest.raises(ConfigError, match="needs model.arch: valor"):
        train_settings({"model": {"num_layers": 2}})
    with pytest.raises(ConfigError, match="segment logits"):
        train_settings({"train": {"loss": "valor"}})


# ------------------------------------------------------------------------- checkpoints

def _released(tmp_path: Path, name: str) -> tuple[Path, VALOR]:
    torch.manual_seed(3)
    model = _official(name).eval()
    path = tmp_path / name / "checkpoint_best.pt"
    path.parent.mkdir()
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, path)
    return path, model


def test_released_checkpoint_loads_and_checks_the_variant(tmp_path):
    path, ref = _released(tmp_path, "valor_pp")
    model, info = load_model(path, expect="valor_pp")
    assert info["official"] and model.config.audio_role == "clap_audio" and model.config.nhead == 8
    x = (torch.randn(2, 64, 768), torch.randn(2, 10, 768), torch.randn(2, 10, 512))
    with torch.no_grad():
        torch.testing.assert_close(model(*x).frame_prob, ref(*x).frame_prob)
    with pytest.raises(InputError, match=r"checkpoint_best\.pt.*VALOR\+\+, not of VALOR\+ "):
        load_model(path, expect="valor_plus")
    state = torch.load(path, weights_only=True)
    del state["hat_encoder.layers.1.norm2.bias"]
    state["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(InputError, match=r"bad\.pt.*missing key\(s\) hat_encoder\.layers\.1\.norm2\.bias; "
                                         r"unexpected key\(s\) extra\.weight"):
        load_model(bad)
    han = tmp_path / "han.pt"
    torch.save(HAN(d_model=8, dim_feedforward=8).state_dict(), han)
    with pytest.raises(InputError, match=r"han\.pt.*not a VALOR"):
        load_model(han, expect="valor")


class _Boom:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_a_crafted_pickle_is_refused(tmp_path, capsys):
    path = tmp_path / "checkpoint_best.pt"
    torch.save({"fc_a.weight": torch.zeros(2, 2), "evil": _Boom()}, path, pickle_module=pickle)
    with pytest.raises(InputError, match="cannot read as a torch checkpoint"):
        load_model(path, expect="valor")
    assert "unpickled!" not in capsys.readouterr().out


# ------------------------------------------------------------------------- end to end

CLASSES = ["Dog", "Speech", "Car"]


def _dataset(root: Path, teacher_roles: bool, n=(16, 4, 4), seed=0) -> dict:
    """Annotations, manifest, feature stores (standard, or with CLAP/CLIP roles) and pseudo-label
    files; the features carry each video's events."""
    rng = np.random.default_rng(seed)
    ann = root / "annotations"
    ann.mkdir(parents=True)
    (ann / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    total = sum(n)
    ids = [f"vid{i:08d}_0_10" for i in range(total)]
    truth = {m: np.zeros((total, 10, 3), np.uint8) for m in ("audio", "visual")}
    dense = {"audio": [], "visual": []}
    weak = []
    for i in range(total):
        classes = sorted(rng.choice(3, size=int(rng.integers(1, 3)), replace=False))
        weak.append(classes)
        for c in classes:
            for m in truth:
                on = int(rng.integers(0, 6))
                off = int(rng.integers(on + 1, 11))
                truth[m][i, on:off, c] = 1
                dense[m].append(f"{ids[i]}\t{on}\t{off}\t{CLASSES[c]}")
    bounds = np.cumsum((0,) + n)
    for split, name, lo, hi in zip(("train", "val", "test"), ("AVVP_train.csv", "AVVP_val_pd.csv",
                                                              "AVVP_test_pd.csv"), bounds[:-1], bounds[1:]):
        rows = [f"{ids[i]}\t{','.join(CLASSES[c] for c in weak[i])}" for i in range(lo, hi)]
        (ann / name).write_text("filename\tevent_labels\n" + "\n".join(rows) + "\n")
    for m, rows in dense.items():
        (ann / f"AVVP_eval_{m}.csv").write_text("filename\tonset\toffset\tevent_labels\n" + "\n".join(rows) + "\n")
    write_tables(read_llp(ann), root)
    feats = root / "features"
    attrs = {"extractor": "test", "settings": "{}", "weights": "random:0"}
    a_seg = rng.normal(0, 0.3, (total, 10, 6)).astype(np.float32)
    a_seg[..., :3] += 2 * truth["audio"]
    v_seg = rng.normal(0, 0.3, (total, 10, 5)).astype(np.float32)
    v_seg[..., :3] += 2 * truth["visual"]
    write_store(feats / "clip.h5", ids, rng.normal(0, 0.3, (total, 10, 4)).astype(np.float32),
                {"role": "clip", **attrs})
    if teacher_roles:  # CLAP token map: 2 halves x 32 steps, step j covering 10j/32 s
        steps = np.repeat(a_seg, 4, axis=1)[:, (np.arange(32) * 40) // 32]
        write_store(feats / "clap_audio.h5", ids, np.concatenate([steps, steps], axis=1),
                    {"role": "clap_audio", **attrs})
        write_store(feats / "clip_image.h5", ids, v_seg, {"role": "clip_image", **attrs})
    else:
        write_store(feats / "audio.h5", ids, a_seg, {"role": "audio", **attrs})
        write_store(feats / "frame.h5", ids, np.repeat(v_seg, 8, axis=1), {"role": "frame", **attrs})
    pseudo = {}
    for m in ("audio", "visual"):
        noisy = truth[m] * (rng.random(truth[m].shape) > 0.1)
        pseudo[m] = root / "pseudo" / f"{m}.parquet"
        write_pseudo_labels(pseudo[m], PseudoLabels(m, ids, CLASSES, noisy.astype(np.uint8)))
    return {"root": root, "ann": ann, "features": feats, "pseudo": pseudo}


def _tiny_settings(**model) -> dict:
    return {"model": {"arch": "valor", "d_model": 16, "nhead": 2, "dim_feedforward": 16, "num_layers": 2,
                      "standardize": True, **model},
            "train": {"epochs": 4, "batch_size": 8, "lr": 3e-3, "lr_min": 3e-5, "warmup_epochs": 2,
                      "optimizer": "adamw", "betas": [0.5, 0.999], "weight_decay": 1e-3,
                      "schedule": "warmup_cosine", "clip_grad_norm": 1.0, "loss": "valor",
                      "select": "best", "select_ties": "earlier", "gate": "han", "device": "cpu"}}


@pytest.mark.parametrize("teacher_roles", [False, True], ids=["valor", "valor_pp_roles"])
def test_train_predict_evaluate_with_pseudo_labels(tmp_path, teacher_roles):
    d = _dataset(tmp_path, teacher_roles)
    roles = {"audio_role": "clap_audio", "frame_role": "clip_image"} if teacher_roles else {}
    out = tmp_path / "models" / "model.pt"
    result = run_training(d["features"], d["root"] / "manifest.parquet", out, _tiny_settings(**roles), seed=5,
                          progress=False, pseudo_audio=d["pseudo"]["audio"], pseudo_visual=d["pseudo"]["visual"])
    h = result.history
    assert list(h["lr"]) == pytest.approx([1.5e-3, 3e-3, warmup_cosine_lr(3, 3e-3, 3e-5, 2, 4), 3e-5])
    assert h["loss"].iloc[-1] < h["loss"].iloc[0]
    model, info = load_model(out)
    assert isinstance(model, VALOR) and model.config.audio_role == ("clap_audio" if teacher_roles else "audio")
    assert info["meta"]["pseudo_labels"] == [str(d["pseudo"]["audio"]), str(d["pseudo"]["visual"])]
    preds = tmp_path / "test.npz"
    pred = predict_split(out, d["features"], d["root"] / "manifest.parquet", "test", preds,
                         {"device": "cpu"}, progress=False)
    res = evaluate_predictions(pred, read_llp(d["ann"]), "test", gate="han")
    assert 0.0 <= res.overall["segment_type"] <= 1.0
    assert pred.frame_prob.shape == (4, 10, 2, 3)


def test_pseudo_labels_are_required_and_checked(tmp_path):
    d = _dataset(tmp_path, False, n=(6, 2, 2))
    manifest, out = d["root"] / "manifest.parquet", tmp_path / "m" / "model.pt"
    with pytest.raises(ConfigError, match="--pseudo-audio"):
        run_training(d["features"], manifest, out, _tiny_settings(), progress=False)
    with pytest.raises(InputError, match=r"visual\.parquet.*holds visual pseudo labels, not audio"):
        run_training(d["features"], manifest, out, _tiny_settings(), progress=False,
                     pseudo_audio=d["pseudo"]["visual"], pseudo_visual=d["pseudo"]["visual"])


def test_jomold_denoising_drops_pseudo_labels(tmp_path):
    from avvp.stages.refine.ratios import NoiseRatios, write_ratios

    d = _dataset(tmp_path, False, n=(12, 3, 3))
    ratios = tmp_path / "ratios.parquet"
    full = np.full(3, 0.5)
    write_ratios(ratios, NoiseRatios(CLASSES, full, full, np.full(3, 4), np.full(3, 2), np.full(3, 2), "estimator"))
    s = _tiny_settings(num_layers=1)
    s["train"].update(epochs=3, denoise={"method": "jomold"})
    out = tmp_path / "m" / "model.pt"
    result = run_training(d["features"], d["root"] / "manifest.parquet", out, s, progress=False, ratios=ratios,
                          pseudo_audio=d["pseudo"]["audio"], pseudo_visual=d["pseudo"]["visual"])
    h = result.history
    assert h["denoise_drops_audio"].iloc[0] == 0 and h["denoise_drops_audio"].iloc[1:].sum() > 0
    assert (out.parent / "drops.parquet").exists()


class _Stop(Exception):
    pass


def test_resume_is_bitwise_with_the_valor_recipe(tmp_path):
    d = _dataset(tmp_path, False, n=(12, 3, 3))
    s = _tiny_settings(num_layers=1)
    s["train"]["epochs"] = 3
    kw = {"progress": False, "pseudo_audio": d["pseudo"]["audio"], "pseudo_visual": d["pseudo"]["visual"]}
    manifest = d["root"] / "manifest.parquet"
    full, part = tmp_path / "full" / "model.pt", tmp_path / "part" / "model.pt"
    run_training(d["features"], manifest, full, s, seed=2, **kw)

    def stop(event, epoch, step):
        if event == "batch" and epoch == 2 and step == 1:
            raise _Stop

    with pytest.raises(_Stop):
        run_training(d["features"], manifest, part, s, seed=2, hook=stop, **kw)
    run_training(d["features"], manifest, part, s, seed=2, **kw)
    a, b = load_model(full)[0].state_dict(), load_model(part)[0].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_methods_table_with_published_numbers(tmp_path):
    import json

    from avvp.stages.paper_tables import write_table
    from avvp.core.metrics import METRICS

    settings = {"seeds": [1, 2], "split": "test", "published": True}
    for i, row in enumerate(table_rows("methods", settings)):
        for seed in (1, 2):
            path = tmp_path / "eval" / row.variant / f"seed{seed}" / "test" / "metrics.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({"overall": {m: 0.1 * i + 0.01 * seed for m in METRICS}}))
    summary = write_table("methods", tmp_path, settings, tmp_path / "m.md", tmp_path / "m.csv", tmp_path / "m.png")
    assert summary.loc["VALOR", "segment_type_mean"] == pytest.approx(31.5)
    text = (tmp_path / "m.md").read_text()
    published = (61.8, 65.9, 58.4, 62.0, 61.5, 55.4, 62.6, 52.2, 56.7, 54.2)  # beside each cell
    assert "| VALOR | " + " | ".join(f"31.5 ± 0.7 ({x:.1f})" for x in published) + " |" in text
    assert "| VALOR, MA's labels | 41.5 ± 0.7 | 41.5 ± 0.7 |" in text  # no published numbers: none beside
    assert "| VALOR++ |" not in text  # no teacher features configured: no VALOR++ row, published or not
