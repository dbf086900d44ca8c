"""avvp parse with a VALOR++ model: the teachers (CLAP, CLIP) extracted from the video.

The teachers are tiny, randomly initialised transformers models written here (as in
tests/test_teachers.py; nothing is downloaded); the R(2+1)D extractor has random weights. The
parse result is compared with the model run by hand on the extractors' features, window by window.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avvp.core.checkpoint import save_model
from avvp.infra.errors import ConfigError, MissingWeightsError
from avvp.stages.extractors import create_extractor
from avvp.stages.parse import extract_features, load_parser, parse_video
from avvp.core.valor.model import VALOR
from test_parse import CLASSES, FEATURES, make_video
from test_teachers import write_clap_teacher, write_clip_teacher

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("teachers")
    return {"clip_image": {"weights": str(write_clip_teacher(d / "clip"))},
            "clap_audio": {"weights": str(write_clap_teacher(d / "clap"))},
            "clip": dict(FEATURES["clip"])}


@pytest.fixture(scope="module")
def extractors(teachers) -> dict:
    """Input slot -> extractor of the role VALOR++ reads there."""
    return {"audio": create_extractor(teachers["clap_audio"], "clap_audio"),
            "frame": create_extractor(teachers["clip_image"], "clip_image"),
            "clip": create_extractor(teachers["clip"], "clip")}


def _valor_pp(extractors) -> VALOR:
    torch.manual_seed(0)
    return VALOR(audio_dim=extractors["audio"].dim, frame_dim=extractors["frame"].dim,
                 clip_dim=extractors["clip"].dim, n_classes=len(CLASSES), d_model=16, nhead=2,
                 dim_feedforward=16, num_layers=2, audio_role="clap_audio", frame_role="clip_image").eval()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, extractors) -> tuple:
    model = _valor_pp(extractors)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(path, model, CLASSES, {"features": {slot: ext.describe() for slot, ext in extractors.items()}})
    return path, model


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("videos") / "long.mp4", 12.4, fps=8)


def _by_hand(model, extractors, path, windows) -> np.ndarray:
    """frame_prob of the model on each window's features (CLAP: one token map per window)."""
    feats = {slot: [] for slot in extractors}
    start = 0
    for seconds in windows:
        for slot, ext in extractors.items():
            feats[slot].append(ext.assemble(ext.forward(ext.load(path, seconds, start=start)))[0])
        start += seconds
    x = [torch.from_numpy(np.concatenate(feats[s]))[None] for s in ("audio", "frame", "clip")]
    with torch.inference_mode():
        return model(*x, audio_windows=windows).frame_prob[0].numpy()


def test_valor_pp_model_is_parsed_with_its_teachers(model_file, extractors, video):
    path, model = model_file
    parser = load_parser(path, {"device": "cpu"}, config=None)
    assert parser.feature_source == "model file"
    assert parser.roles == {"audio": "clap_audio", "frame": "clip_image", "clip": "clip"}
    assert {slot: ext.role for slot, ext in parser.extractors.items()} == parser.roles
    feats, _ = extract_features(parser, video, 12)
    assert feats["audio"].shape == (1, 128, extractors["audio"].dim)  # two windows: 10 s and 2 s
    assert feats["frame"].shape == (1, 12, extractors["frame"].dim)
    result = parse_video(parser, video)
    assert result.segments == 12 and result.frame_prob.shape == (12, 2, len(CLASSES))
    np.testing.assert_allclose(result.frame_prob, _by_hand(model, extractors, video, [10, 2]), atol=1e-5)


def test_window_maps_are_pooled_separately(extractors):
    """Two windows' maps, each pooled to its own segments: the same as embedding each alone."""
    model = _valor_pp(extractors)
    maps = torch.randn(1, 128, extractors["audio"].dim)
    with torch.no_grad():
        both = model.embed_audio(maps, 12, [10, 2])
        first, second = model.embed_audio(maps[:, :64], 10), model.embed_audio(maps[:, 64:], 2)
        torch.testing.assert_close(both, torch.cat([first, second], dim=1))
        with pytest.raises(ValueError, match="expected 64 rows per window"):
            model.embed_audio(maps, 12, [12])


def test_teacher_weights_from_the_config_and_a_missing_file_named(tmp_path, extractors, teachers, video):
    model = _valor_pp(extractors)
    path = tmp_path / "model.pt"
    save_model(path, model, CLASSES, {})  # e.g. trained on VALOR's released features: no settings
    config = tmp_path / "config.yaml"
    import yaml

    config.write_text(yaml.safe_dump({"features": teachers}))
    parser = load_parser(path, {"device": "cpu"}, config=config)
    assert parser.feature_source == str(config)
    assert parse_video(parser, video).segments == 12
    missing = tmp_path / "no-such-clip"
    with pytest.raises(MissingWeightsError, match="no-such-clip"):
        load_parser(path, {"device": "cpu"}, features={**teachers, "clip_image": {"weights": str(missing)}})
    with pytest.raises(ConfigError, match="no 'features.clip' section"):
        load_parser(path, {"device": "cpu"}, features={k: teachers[k] for k in ("clip_image", "clap_audio")})
