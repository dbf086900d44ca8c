"""Extractors: the VGGish front end and network, 2-D and R(2+1)D backbones, weight loading."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torchvision

from avvp.infra.errors import ConfigError, InputError, MissingWeightsError
from avvp.stages.extractors import create_extractor, extractor_names
from avvp.stages.extractors.frame2d import crop_frames
from avvp.stages.extractors.r2plus1d import squash_clips
from avvp.stages.extractors.vggish import VGGish, examples, hz_to_mel, load_pca, log_mel, mel_matrix
from avvp.infra.weights import resolve_weights, seeded

SR = 16000


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- VGGish front end --------------------------------------------------------------------------

def _reference_log_mel(x: np.ndarray) -> np.ndarray:
    """A loop-by-loop version of the VGGish front end (facts.md), for comparison."""
    n = np.arange(400)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / 400)
    freqs = np.arange(257) * SR / 512
    mel = 1127.0 * np.log(1.0 + freqs / 700.0)
    lo, hi = 1127.0 * np.log(1 + 125 / 700), 1127.0 * np.log(1 + 7500 / 700)
    edges = [lo + (hi - lo) * i / 65 for i in range(66)]
    weights = np.zeros((257, 64))
    for b in range(64):
        left, centre, right = edges[b], edges[b + 1], edges[b + 2]
        for k in range(1, 257):
            m = mel[k]
            if left < m <= centre:
                weights[k, b] = (m - left) / (centre - left)
            elif centre < m < right:
                weights[k, b] = (right - m) / (right - centre)
    rows = []
    for start in range(0, len(x) - 400 + 1, 160):
        frame = np.zeros(512)
        frame[:400] = x[start:start + 400] * window
        rows.append(np.abs(np.fft.fft(frame))[:257])
    return np.log(np.array(rows) @ weights + 0.01)


def test_log_mel_matches_reference():
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(SR // 2)).astype(np.float32)
    ours = log_mel(x)
    assert ours.shape == (1 + (len(x) - 400) // 160, 64)
    np.testing.assert_allclose(ours, _reference_log_mel(x.astype(np.float64)), rtol=1e-6, atol=1e-6)


def test_mel_matrix_shape_and_range():
    w = mel_matrix()
    assert w.shape == (257, 64)
    freqs = np.arange(257) * SR / 512
    assert np.all(w[freqs < 125] == 0) and np.all(w[freqs > 7500] == 0)
    assert w.max() <= 1.0 and np.all(w.max(axis=0) > 0.3)  # every band catches some bin
    centres = np.argmax(w, axis=0)
    assert np.all(np.diff(centres) >= 0)
    assert hz_to_mel(700.0) == pytest.approx(1127.0 * np.log(2.0))


def test_sine_peaks_in_its_band_and_silence_is_log_offset():
    t = np.arange(SR) / SR
    spec = log_mel(0.5 * np.sin(2 * np.pi * 1000.0 * t))
    edges = np.linspace(hz_to_mel(125), hz_to_mel(7500), 66)
    expected = int(np.argmin(np.abs(edges[1:-1] - hz_to_mel(1000.0))))
    assert abs(int(np.argmax(spec.mean(axis=0))) - expected) <= 1
    np.testing.assert_allclose(log_mel(np.zeros(SR)), np.log(0.01))


@pytest.mark.parametrize("seconds, n", [(10.0, 10), (3.0, 3), (3.5, 3), (0.5, 0)])
def test_examples_drop_the_tail(seconds, n):
    out = examples(np.zeros(int(seconds * SR), np.float32))
    assert out.shape == (n, 1, 96, 64) and out.dtype == np.float32


# -- VGGish network and weights --------------------------------------------------------------

def test_vggish_state_dict_matches_torchvggish(shared_dir):
    spec = (shared_dir / "spec" / "torchvggish_state_dict.tsv").read_text().split("\n")
    expected = {}
    for line in filter(None, spec):
        key, shape = line.split("\t")
        expected[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    ours = {k: tuple(v.shape) for k, v in VGGish().state_dict().items()}
    assert ours == expected


def assert_same_features(actual: np.ndarray, expected: np.ndarray, rel: float = 1e-4) -> None:
    """Features agree to ``rel``: each row's error norm within ``rel`` of its norm, and every
    element within ``rel`` of the largest magnitude (so that near-zero elements are judged on
    the features' scale, not their own)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    rows_a, rows_e = actual.reshape(len(actual), -1), expected.reshape(len(expected), -1)
    norm_err = np.linalg.norm(rows_a - rows_e, axis=1) / np.maximum(np.linalg.norm(rows_e, axis=1), 1e-30)
    assert norm_err.max() <= rel, f"relative error norm {norm_err.max():.2e} > {rel:g}"
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rel * np.abs(expected).max())


def test_vggish_loads_torchvggish_file_and_pca(tmp_path):
    with seeded(7):
        reference = VGGish().eval()
    weights = tmp_path / "vggish.pth"
    torch.save(reference.state_dict(), weights)
    ext = create_extractor({"extractor": "vggish", "weights": str(weights)}, role="audio")
    x = torch.randn(3, 1, 96, 64)
    with torch.inference_mode():
        expected = reference(x).numpy()
    out = ext.forward(x)
    assert out.shape == (3, 128) and (out >= 0).all()
    assert_same_features(out, expected)
    assert ext.describe()["weights"] == _sha(weights)
    random = create_extractor({"extractor": "vggish"}, role="audio")
    assert random.describe()["weights"] == "random:0"
    assert not np.allclose(random.forward(x), expected)

    # PCA parameters in the torchvggish layout: eigenvectors (128, 128), means (128, 1)
    rng = np.random.default_rng(0)
    vectors, means = rng.normal(size=(128, 128)) * 0.05, rng.normal(size=(128, 1))
    pca = tmp_path / "pca.pth"
    torch.save({"pca_eigen_vectors": torch.tensor(vectors), "pca_means": torch.tensor(means)}, pca)
    ext = create_extractor({"extractor": "vggish", "weights": str(weights), "pca": True,
                            "pca_params": str(pca)}, role="audio")
    quantised = ext.forward(x)
    manual = np.round((np.clip((vectors @ (expected.T - means)).T, -2, 2) + 2) * 255 / 4)
    assert np.abs(quantised - manual).max() <= 1  # float32 vs float64 rounding at .5
    assert np.mean(quantised == manual) > 0.99
    assert quantised.min() >= 0 and quantised.max() <= 255
    assert np.all(quantised == np.round(quantised))
    assert "+pca:" + _sha(pca) in ext.describe()["weights"]
    # the TensorFlow .npz layout gives the same parameters
    np.savez(tmp_path / "pca.npz", pca_eigen_vectors=vectors, pca_means=means.ravel())
    from_npz, from_pth = load_pca(str(tmp_path / "pca.npz")), load_pca(str(pca))
    np.testing.assert_array_equal(from_npz[0], from_pth[0])
    np.testing.assert_array_equal(from_npz[1], from_pth[1])


def test_missing_weight_file_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "resnet.pth"
    with pytest.raises(MissingWeightsError, match="nowhere/resnet.pth"):
        create_extractor({"extractor": "vggish", "weights": str(missing)}, role="audio")
    with pytest.raises(MissingWeightsError, match="pca_missing.pth"):
        create_extractor({"extractor": "vggish", "pca": True,
                          "pca_params": str(tmp_path / "pca_missing.pth")}, role="audio")


def test_weights_from_url_use_the_hub_cache(tmp_path, monkeypatch):
    with seeded(3):
        state = torch.nn.Conv2d(1, 4, 3).state_dict()
    source = tmp_path / "src" / "vggish-test.pth"
    source.parent.mkdir()
    torch.save(state, source)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    resolved = resolve_weights(source.as_uri(), what="test weights")
    cached = tmp_path / "hub" / "checkpoints" / "vggish-test.pth"
    assert cached.exists() and resolved.identity == _sha(source)
    assert torch.equal(resolved.state_dict["weight"], state["weight"])
    # the cached copy is found by name, too
    source.unlink()
    assert resolve_weights("vggish-test.pth").identity == _sha(cached)


def test_bad_weight_file_names_keys(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(InputError, match=r"w\.pth.*missing keys"):
        create_extractor({"extractor": "vggish", "weights": str(path)}, role="audio")


# -- 2-D backbones -----------------------------------------------------------------------------

def test_frame_backbone_weights_file(tmp_path):
    """A torchvision state dict (with its fc) saved from another seed is what the extractor runs."""
    with seeded(11):
        reference = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    reference.fc = torch.nn.Identity()
    reference.eval()
    settings = {"extractor": "resnet152", "backbone": "resnet18", "size": 40, "crop": 32}
    ext = create_extractor({**settings, "weights": str(path)}, role="frame")
    units = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.inference_mode():
        expected = reference((units.float() / 255 - mean) / std).numpy()
    out = ext.forward(units)
    assert out.shape == (5, 512) and ext.dim == 512
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    same = create_extractor(settings, role="frame")
    again = create_extractor(settings, role="frame")
    other = create_extractor({**settings, "seed": 1}, role="frame")
    np.testing.assert_array_equal(same.forward(units), again.forward(units))
    assert not np.allclose(same.forward(units), other.forward(units))
    assert not np.allclose(same.forward(units), out)


def test_timm_backbone_by_name():
    ext = create_extractor({"extractor": "resnet152", "backbone": "mobilenetv3_small_050",
                            "size": 36, "crop": 32}, role="frame")
    out = ext.forward(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    assert out.shape == (2, ext.dim) and ext.dim > 0
    with pytest.raises(ConfigError, match="neither"):
        create_extractor({"extractor": "resnet152", "backbone": "no_such_net"}, role="frame")


def test_official_frame_preprocessing():
    """Shorter side to `size` keeping the aspect ratio, then a centre crop (official.md §b.4)."""
    frames = torch.zeros(2, 240, 320, 3, dtype=torch.uint8)
    frames[:, :, 150:170] = 255  # a vertical bar at the centre
    out = crop_frames(frames, 256, 224)
    assert out.shape == (2, 3, 224, 224) and out.dtype == torch.uint8
    # 320 x 240 -> 341 x 256; crop keeps columns 58..281; the bar (160..181 after scaling) is centred
    cols = out[0, 0].float().mean(dim=0)
    assert cols[100:120].max() > 200 and cols[:80].max() < 5 and cols[150:].max() < 5


def test_clip_preprocessing_groups_consecutive_frames():
    frames = torch.arange(24, dtype=torch.uint8).view(24, 1, 1, 1).expand(24, 48, 64, 3).contiguous()
    clips = squash_clips(frames, 16)
    assert clips.shape == (3, 3, 8, 16, 16)  # T, C, 8, H, W (aspect not kept)
    assert clips[1, 0, :, 0, 0].tolist() == list(range(8, 16))


def test_r2plus1d_weights_file(tmp_path):
    with seeded(5):
        reference = torchvision.models.video.r2plus1d_18()
    path = tmp_path / "r2p1.pth"
    torch.save({"state_dict": reference.state_dict()}, path)  # a wrapped checkpoint
    reference.fc = torch.nn.Identity()
    reference.eval()
    ext = create_extractor({"extractor": "r2plus1d_18", "weights": str(path), "size": 16}, role="clip")
    units = torch.randint(0, 256, (2, 3, 8, 16, 16), dtype=torch.uint8)
    mean = torch.tensor([0.43216, 0.394666, 0.37645]).view(1, 3, 1, 1, 1)
    std = torch.tensor([0.22803, 0.22145, 0.216989]).view(1, 3, 1, 1, 1)
    with torch.inference_mode():
        expected = reference((units.float() / 255 - mean) / std).numpy()
    out = ext.forward(units)
    assert out.shape == (2, 512)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    assert ext.describe()["weights"] == _sha(path)


def test_registry_and_settings_errors():
    assert {"vggish", "resnet152", "r2plus1d_18"} <= set(extractor_names())
    with pytest.raises(ConfigError, match="audio features, not frame"):
        create_extractor({"extractor": "vggish"}, role="frame")
    with pytest.raises(ConfigError, match="unknown key 'features.audio.colour'"):
        create_extractor({"extractor": "vggish", "colour": 1}, role="audio")
    with pytest.raises(ConfigError, match="unknown extractor"):
        create_extractor({"extractor": "wav2vec"}, role="audio")
    with pytest.raises(ConfigError, match="pca_params is none"):
        create_extractor({"extractor": "vggish", "pca": True, "pca_params": "none"}, role="audio")


# -- on the real LLP clip --------------------------------------------------------------------

def test_extractors_on_real_clip(sample_clip):
    if not sample_clip.exists():
        pytest.skip(f"{sample_clip} not found")
    audio = create_extractor({"extractor": "vggish"}, role="audio")
    units = audio.load(sample_clip, 10.0)
    assert units.shape == (10, 1, 96, 64)
    assert audio.forward(units).shape == (10, 128)
    frame = create_extractor({"extractor": "resnet152", "backbone": "resnet18", "size": 40,
                              "crop": 32}, role="frame")
    units = frame.load(sample_clip, 10.0)
    assert units.shape == (80, 3, 32, 32)
    clip = create_extractor({"extractor": "r2plus1d_18", "size": 16}, role="clip")
    assert clip.load(sample_clip, 10.0).shape == (10, 3, 8, 16, 16)


def test_random_vggish_embeddings_keep_their_scale():
    """With weights: none, VGGish's He init gives embeddings that vary between inputs (issue 6:
    PyTorch's default init made them near-constant, std ~0.006, so nothing downstream could learn)."""
    import numpy as np
    import torch

    from avvp.stages.extractors.vggish import VGGish

    torch.manual_seed(0)
    net = VGGish().eval()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(-2.0, 2.0, size=(8, 1, 96, 64)).astype(np.float32))
    with torch.inference_mode():
        out = net(x).numpy()
    assert out.std() > 0.1
    assert out.std(axis=0).mean() > 0.05  # differs between inputs, not just a constant vector


# -- the fast engine computes what the plain fp32 eager model computes (issue 14) -------------

def _plain_features(ext, units: torch.Tensor, mean=None, std=None) -> np.ndarray:
    """The plain model: official normalisation, contiguous NCHW / NCTHW fp32, eager."""
    x = units.float()
    if mean is not None:
        shape = (1, 3) + (1,) * (x.dim() - 2)
        x = (x / 255.0 - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)
    with torch.inference_mode():
        return ext.model(x.contiguous()).flatten(1).numpy()


def test_fast_engine_matches_the_plain_fp32_model_on_a_real_clip(sample_clip):
    """ResNet-152 (256 → 224), R(2+1)D-18 (112) and VGGish with random weights, on inputs decoded
    from the real LLP clip (a few units each, to stay quick): the frozen, fused graph gives the
    plain model's features to 1e-4 (relative)."""
    from avvp.stages.decoding import decode_streams
    from avvp.stages.extractors.base import IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN, KINETICS_STD

    streams = decode_streams(sample_clip, 0.0, 2.0, n_frames=16)
    cases = [
        ("frame", {"extractor": "resnet152", "size": 256, "crop": 224}, 2, (IMAGENET_MEAN, IMAGENET_STD)),
        ("clip", {"extractor": "r2plus1d_18", "size": 112}, 1, (KINETICS_MEAN, KINETICS_STD)),
        ("audio", {"extractor": "vggish"}, 2, (None, None)),
    ]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for role, settings, n, (mean, std) in cases:
            ext = create_extractor(settings, role=role, batch_size=n)
            units = ext.checked_units(streams, sample_clip, 2.0)[:n]
            reference = _plain_features(ext, units, mean, std)
            fast = ext.forward(units)
            assert_same_features(fast, reference)
            assert ext.engine.jit and ext.engine._graph is not None, role  # the fused graph ran
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("engine", ["jit", "eager"])
def test_bf16_is_close_to_fp32_but_not_equal(one_thread, sample_clip, engine):
    settings = {"extractor": "resnet152", "backbone": "resnet18", "size": 64, "crop": 64}
    fp32 = create_extractor(settings, role="frame", engine=engine)
    bf16 = create_extractor({**settings, "precision": "bf16"}, role="frame", engine=engine)
    units = fp32.load(sample_clip, 1.0)
    a, b = fp32.forward(units), bf16.forward(units)
    error = np.linalg.norm(b - a) / np.linalg.norm(a)
    assert b.dtype == np.float32 and 1e-4 < error < 0.05, error
    assert '"precision":"bf16"' in bf16.describe()["settings"]


def test_engine_options_and_fallback(one_thread):
    from avvp.stages.extractors.engine import Engine

    with pytest.raises(ConfigError, match="precision must be one of"):
        create_extractor({"extractor": "vggish", "precision": "fp16"}, role="audio")
    with pytest.raises(ConfigError, match="engine must be one of"):
        create_extractor({"extractor": "vggish"}, role="audio", engine="compile")

    class DataDependent(torch.nn.Module):  # Python control flow on values: cannot be traced
        def forward(self, x):
            return x * 2 if float(x.sum()) > 0 else x

    engine = Engine(DataDependent().eval(), "cpu", input_ndim=2)
    x = torch.ones(3, 4)
    assert torch.equal(engine(x), x * 2)
    engine_bn = Engine(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval(),
                       "cpu", engine="eager")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in engine_bn.model.modules())  # folded
