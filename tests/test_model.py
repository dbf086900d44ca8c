"""HAN: parameter count, shapes, segment pooling, and the official-checkpoint loader against an
independent functional re-implementation of the official forward pass (official.md §c)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from avvp.core.checkpoint import convert_official, load_model, load_official, save_model
from avvp.infra.errors import InputError, MissingWeightsError
from avvp.core.model import HAN, OFFICIAL_DIMS, HANConfig, count_parameters


def test_official_parameter_count():
    model = HAN(**OFFICIAL_DIMS, n_classes=25)
    assert count_parameters(model) == 4_569_675


def _small(**kw) -> HAN:
    torch.manual_seed(0)
    cfg = dict(audio_dim=6, frame_dim=10, clip_dim=4, n_classes=3, d_model=8, nhead=2,
               dim_feedforward=12, dropout=0.1)
    cfg.update(kw)
    return HAN(**cfg).eval()


@pytest.mark.parametrize("t", [10, 7, 1])
def test_forward_shapes_any_length(t):
    model = _small()
    out = model(torch.randn(2, t, 6), torch.randn(2, t, 10), torch.randn(2, t, 4))
    assert out.global_prob.shape == out.a_prob.shape == out.v_prob.shape == (2, 3)
    assert out.frame_prob.shape == (2, t, 2, 3)
    assert out.a_feat.shape == out.v_feat_pre.shape == (2, t, 8)
    for p in (out.global_prob, out.a_prob, out.v_prob, out.frame_prob):
        assert torch.all((p >= 0) & (p <= 1))
    # The video probabilities are attention-weighted means of the frame probabilities.
    assert torch.all(out.a_prob <= out.frame_prob[:, :, 0].max(dim=1).values + 1e-6)
    assert torch.all(out.v_prob >= out.frame_prob[:, :, 1].min(dim=1).values - 1e-6)


def test_frame_pooling_in_model_equals_pooled_input():
    model = _small()
    audio, clip = torch.randn(3, 5, 6), torch.randn(3, 5, 4)
    frames = torch.randn(3, 40, 10)
    full = model(audio, frames, clip)
    pooled = model(audio, frames.reshape(3, 5, 8, 10).mean(dim=2), clip)
    for name in ("global_prob", "a_prob", "v_prob", "frame_prob", "a_feat", "v_feat_pre"):
        torch.testing.assert_close(getattr(full, name), getattr(pooled, name), atol=1e-5, rtol=1e-5)


def test_shared_han_layer_and_bad_shapes():
    model = _small()
    names = [n for n, _ in model.named_modules()]
    assert sum(1 for n in names if n.endswith("cm_attn")) == 1  # one HAN layer for both modalities
    with pytest.raises(ValueError, match="clip features"):
        model(torch.randn(2, 10, 6), torch.randn(2, 10, 10), torch.randn(2, 9, 4))
    with pytest.raises(ValueError, match="frame features"):
        model(torch.randn(2, 10, 6), torch.randn(2, 15, 10), torch.randn(2, 10, 4))
    with pytest.raises(ValueError, match="dropout"):
        HANConfig(dropout=1.0)
    with pytest.raises(ValueError, match="divisible"):
        HANConfig(d_model=10, nhead=3)


def test_dropout_only_in_training():
    model = _small(dropout=0.5)
    x = (torch.randn(2, 10, 6), torch.randn(2, 10, 10), torch.randn(2, 10, 4))
    assert torch.equal(model(*x).global_prob, model(*x).global_prob)
    model.train()
    assert not torch.equal(model(*x).frame_prob, model(*x).frame_prob)


# --------------------------------------------------------------------- official checkpoints

def _read_spec(path) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, shape = line.split("\t")
            shapes[key] = tuple(int(v) for v in re.findall(r"\d+", shape))
    return shapes


def _official_state(spec: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in spec.items():
        fan_in = shape[-1] if len(shape) == 2 else 1
        state[key] = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
        if key.endswith(("norm1.weight", "norm2.weight")):
            state[key] = 1.0 + 0.1 * state[key]
    return state


def _linear(x, s, name):
    return x @ s[f"{name}.weight"].T + s[f"{name}.bias"]


def _attention(q, kv, s, prefix):
    """Single-head attention with a packed in-projection, written out by hand (B, T, d)."""
    w, b = s[f"{prefix}.in_proj_weight"], s[f"{prefix}.in_proj_bias"]
    d = q.shape[-1]
    wq, wk, wv = w[:d], w[d:2 * d], w[2 * d:]
    bq, bk, bv = b[:d], b[d:2 * d], b[2 * d:]
    qq, kk, vv = q @ wq.T + bq, kv @ wk.T + bk, kv @ wv.T + bv
    att = torch.softmax(qq @ kk.transpose(1, 2) / math.sqrt(d), dim=-1)
    return _linear(att @ vv, s, f"{prefix}.out_proj")


def _layer_norm(x, s, name):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * s[f"{name}.weight"] + s[f"{name}.bias"]


def _reference(s, audio, frames80, clip):
    """The official MMIL_Net forward in eval mode, from the raw tensors (official.md §c)."""
    b = audio.shape[0]
    x_a = _linear(audio, s, "fc_a")
    v = _linear(frames80, s, "fc_v")                    # (B, 80, d) per frame
    v = v.reshape(b, 10, 8, -1).mean(dim=2)             # avg_pool (8, 1) over time
    x_v = _linear(torch.cat([v, _linear(clip, s, "fc_st")], dim=-1), s, "fc_fusion")
    p = "hat_encoder.layers.0"

    def han(q, k):
        h = _layer_norm(q + _attention(q, k, s, f"{p}.cm_attn") + _attention(q, q, s, f"{p}.self_attn"),
                        s, f"{p}.norm1")
        ff = _linear(torch.relu(_linear(h, s, f"{p}.linear1")), s, f"{p}.linear2")
        return _layer_norm(h + ff, s, f"{p}.norm2")

    a2, v2 = han(x_a, x_v), han(x_v, x_a)
    x = torch.stack([a2, v2], dim=2)
    frame_prob = torch.sigmoid(_linear(x, s, "fc_prob"))
    w_t = torch.softmax(_linear(x, s, "fc_frame_att"), dim=1)
    w_m = torch.softmax(_linear(x, s, "fc_av_att"), dim=2)
    global_prob = (w_t * w_m * frame_prob).sum(dim=(1, 2))
    a_prob = (w_t[:, :, 0] * frame_prob[:, :, 0]).sum(dim=1)
    v_prob = (w_t[:, :, 1] * frame_prob[:, :, 1]).sum(dim=1)
    return global_prob, a_prob, v_prob, frame_prob, a2, x_v


@pytest.mark.parametrize("which", ["han", "ma"])
def test_official_checkpoint_matches_reference(which, shared_dir, tmp_path):
    spec = _read_spec(shared_dir / "spec" / f"official_{which}_state_dict.tsv")
    state = _official_state(spec, seed=1 if which == "han" else 2)
    path = tmp_path / "MMIL_Net.pt"
    torch.save(state, path)
    model = load_official(path)
    assert count_parameters(model) == 4_569_675
    assert model.config.to_dict() == HANConfig().to_dict()

    gen = torch.Generator().manual_seed(3)
    audio = torch.randn(2, 10, 128, generator=gen)
    frames = torch.randn(2, 80, 2048, generator=gen)
    clip = torch.randn(2, 10, 512, generator=gen)
    with torch.no_grad():
        got = model(audio, frames, clip)
        want = _reference(state, audio, frames, clip)
    for name, ref in zip(("global_prob", "a_prob", "v_prob", "frame_prob", "a_feat", "v_feat_pre"), want):
        torch.testing.assert_close(getattr(got, name), ref, atol=2e-5, rtol=1e-4, msg=name)
    # The official model pools 80 frames after fc_v; pooled inputs give the same outputs.
    with torch.no_grad():
        pooled = model(audio, frames.reshape(2, 10, 8, 2048).mean(dim=2), clip)
    torch.testing.assert_close(pooled.global_prob, want[0], atol=2e-5, rtol=1e-4)

    # load_model accepts the official file too (classes unknown).
    model2, info = load_model(path)
    assert info["official"] and info["classes"] is None
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))


def test_official_checkpoint_of_another_architecture_is_refused(shared_dir, tmp_path):
    spec = _read_spec(shared_dir / "spec" / "official_han_state_dict.tsv")
    state = _official_state(spec, seed=0)

    missing = dict(state)
    del missing["hat_encoder.layers.0.cm_attn.out_proj.bias"]
    with pytest.raises(InputError, match=r"missing key\(s\) hat_encoder\.layers\.0\.cm_attn\.out_proj\.bias"):
        convert_official(missing)

    wrong = dict(state)
    wrong["fc_fusion.weight"] = torch.zeros(512, 1000)
    with pytest.raises(InputError, match=r"fc_fusion\.weight \(512, 1000\) \(expected \(512, 1024\)\)"):
        convert_official(wrong)

    extra = dict(state)
    extra["classifier.weight"] = torch.zeros(3, 3)
    with pytest.raises(InputError, match=r"unexpected key\(s\) classifier\.weight"):
        convert_official(extra)

    path = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 2048)}, path)
    with pytest.raises(InputError, match=r"resnet\.pt: not a HAN checkpoint: missing key\(s\) fc_a\.weight"):
        load_official(path)
    with pytest.raises(InputError, match="resnet.pt"):
        load_model(path)

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt: cannot read"):
        load_model(junk)
    with pytest.raises(MissingWeightsError, match="absent.pt"):
        load_model(tmp_path / "absent.pt")


def test_empty_and_truncated_model_files_say_why(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.pt: cannot read as a torch checkpoint: the file is "
                                         r"empty \(0 bytes\)$"):
        load_model(empty)
    path = tmp_path / "model.pt"
    save_model(path, _small(), ["a", "b", "c"])
    whole = path.read_bytes()
    for size in (10, len(whole) // 2, len(whole) - 10):
        path.write_bytes(whole[:size])
        with pytest.raises(InputError, match="model.pt: cannot read as a torch checkpoint: the file "
                                             "is truncated, damaged or not a torch file") as err:
            load_model(path)
        assert err.value.problem.rstrip(")").split("(", 1)[1].strip(), "the reason is empty"


def test_own_model_file_round_trip(tmp_path):
    model = _small()
    path = tmp_path / "model.pt"
    save_model(path, model, ["a", "b", "c"], {"seed": 3, "settings": {"x": [1, 2]}})
    loaded, info = load_model(path)
    assert info == {"classes": ["a", "b", "c"], "meta": {"seed": 3, "settings": {"x": [1, 2]}}, "official": False}
    assert loaded.config == model.config
    x = (torch.randn(1, 10, 6), torch.randn(1, 10, 10), torch.randn(1, 10, 4))
    assert torch.equal(loaded(*x).frame_prob, model(*x).frame_prob)
    with pytest.raises(ValueError, match="2 class names"):
        save_model(path, model, ["a", "b"])
    assert np.isfinite(loaded(*x).global_prob.detach().numpy()).all()


def test_standardize_buffers_normalise_inputs_and_keep_the_parameter_count():
    import torch

    from avvp.core.model import HAN, count_parameters

    torch.manual_seed(0)
    plain = HAN()
    std_model = HAN(standardize=True)
    assert count_parameters(std_model) == count_parameters(plain) == 4_569_675
    audio = torch.randn(6, 10, 128) * 0.01 + 3.0
    frame = torch.randn(6, 10, 2048) * 5.0
    clip = torch.randn(6, 10, 512) * 0.001 - 1.0
    std_model.set_input_stats(audio=audio, frame=frame, clip=clip)
    normed = std_model._standardize("audio", audio).reshape(-1, 128)
    assert torch.allclose(normed.mean(0), torch.zeros(128), atol=1e-3)
    assert torch.allclose(normed.std(0, unbiased=False), torch.ones(128), atol=1e-3)
    # A model without standardisation fed standardised inputs gives the same outputs.
    plain.load_state_dict({k: v for k, v in std_model.state_dict().items() if "_mean" not in k and "_std" not in k})
    plain.eval(), std_model.eval()
    with torch.no_grad():
        ours = std_model(audio, frame, clip).global_prob
        ref = plain(*(std_model._standardize(r, x) for r, x in zip(HAN.ROLES, (audio, frame, clip)))).global_prob
    assert torch.allclose(ours, ref, atol=1e-6)
    with pytest.raises(ValueError):
        plain.set_input_stats(audio=audio)
