"""Speaker embeddings: the d-vector front-end, voice prints of real speech, model selection, cost."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from appliance.config.schema import DiarizeConfig
from appliance.diarize import DVectorEmbedder, SherpaEmbedder, make_embedder, pool, voiced_seconds
from appliance.models import ModelError, installed_models, read_manifest
from tests.speech import RATE
from tests.test_diarize_voices import CLINIC, embedder_dir, female, male, recordings, shared_embedder

# librosa 0.11 `melspectrogram(n_fft=512, win_length=400, hop_length=160, n_mels=40,
# window="hamming", center=False)`, log10(+1e-10) - the wheel's recipe - of the signal below:
# per-band means over all 97 frames, and bands 0, 8, .. 32 of frames 0, 45 and 95.
LIBROSA_BAND_MEANS = [
    -3.947, -3.936, -3.583, -3.643, -0.407, 0.375, -0.485, -3.375, -3.240, -3.457, -3.356, -3.492, -3.459, -3.471,
    -3.476, -3.448, -3.457, -3.429, -3.423, -3.409, -3.405, -3.395, -3.386, -3.403, -3.418, -3.456, -2.560, -1.209,
    -2.362, -4.556, -4.722, -4.857, -4.971, -5.071, -5.158, -5.235, -5.301, -5.356, -5.398, -5.426,
]
LIBROSA_FRAMES = [[-3.247, -3.212, -4.016, -4.565, -4.842], [-4.584, -3.469, -3.249, -3.969, -5.168],
                  [-3.685, -4.216, -4.868, -4.023, -4.273]]


def test_front_end_matches_the_wheels_librosa_recipe():
    embedder = DVectorEmbedder(embedder_dir(), hop_samples=None)  # the model's own 10 ms hop
    t = np.arange(RATE) / RATE
    y = (0.3 * np.sin(2 * np.pi * (200 * t + 1500 * t ** 2)) + 0.1 * np.sin(2 * np.pi * 440 * t)
         + 0.02 * np.cos(2 * np.pi * 3000 * t)).astype(np.float32)
    feats = embedder.features(y)
    assert feats.shape == (97, 40)
    np.testing.assert_allclose(feats.mean(axis=0), LIBROSA_BAND_MEANS, atol=2e-3)
    np.testing.assert_allclose(feats[[0, 45, 95]][:, ::8], LIBROSA_FRAMES, atol=2e-3)


def test_model_metadata_sets_the_front_end():
    embedder = shared_embedder()
    assert (embedder.n_fft, embedder.win_length, embedder.model_hop, embedder.n_mels) == (512, 400, 160, 40)
    assert (embedder.window, embedder.dim) == (80, 256)
    assert embedder.hop == 200  # 12.5 ms frames: 80 % of the LSTM's work per second (module docstring)
    assert embedder.window_s == pytest.approx((79 * 200 + 512) / RATE)


def test_voice_prints_of_real_speech():
    embedder = shared_embedder()
    speech = recordings("librivox")[0]  # 7.1 s
    v = embedder.embed(speech)
    assert v.shape == (256,) and v.dtype == np.float32
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    centres, vectors = embedder.window_embeddings(speech)
    # windows cover the voiced audio (pauses are left out): one per hop of voice
    assert vectors.shape == (len(centres), 256)
    assert len(centres) >= int(voiced_seconds(speech) / (embedder.hop_frames * embedder.frame_s))
    assert np.all(np.diff(centres) > 0) and centres[0] > 0 and centres[-1] < speech.size / RATE
    assert float(pool(vectors) @ v) == pytest.approx(1.0, abs=1e-6)  # embed = pooled windows
    # the same reader in other sentences, versus two other voices
    same = embedder.embed(recordings("librivox")[2])
    assert float(v @ same) > 0.75
    assert float(v @ embedder.embed(female(CLINIC[0]))) < 0.4
    assert float(v @ embedder.embed(male(CLINIC[0]))) < 0.5


def test_short_audio_is_refused_or_padded_with_its_own_frames():
    embedder = shared_embedder()
    speech = recordings("librivox")[3]
    assert embedder.embed(speech[: int(0.4 * RATE)]) is None  # too short to tell
    centres, vectors = embedder.window_embeddings(speech[: int(0.4 * RATE)])
    assert len(centres) == 0 and vectors.shape == (0, 256)
    # 0.6 s is padded by repeating itself (zero log-mel frames would be a loud flat spectrum)
    whole = embedder.embed(speech)
    clip = embedder.embed(speech[RATE: RATE + int(0.6 * RATE)])
    assert float(clip @ whole) > 0.6
    assert float(clip @ whole) > float(clip @ embedder.embed(female(CLINIC[1]))) + 0.2


def test_voiced_seconds_is_an_energy_gate():
    rng = np.random.default_rng(0)
    assert voiced_seconds(np.zeros(RATE * 3, np.float32)) == 0.0
    assert voiced_seconds(rng.normal(0, 0.01, RATE * 3).astype(np.float32)) < 0.2  # steady hum, no speech
    speech = recordings("librivox")[0]
    assert 4.0 < voiced_seconds(speech) <= speech.size / RATE


def test_make_embedder_picks_the_model_named_by_the_config(tmp_path):
    models = embedder_dir().parent
    emb = make_embedder(DiarizeConfig(), models)
    assert isinstance(emb, DVectorEmbedder) and emb.name == "voicefilter-embedder"
    with pytest.raises(ModelError, match="appliance models install"):
        make_embedder(replace(DiarizeConfig(), model="no-such-model"), tmp_path)
    whisper = models / "whisper-tiny.en"
    if whisper.is_dir():
        with pytest.raises(ModelError, match="not a speaker-embedding model"):
            make_embedder(replace(DiarizeConfig(), model=str(whisper)), models)


def test_a_damaged_embedder_is_refused(tmp_path):
    src = embedder_dir()
    dst = tmp_path / "voicefilter-embedder"
    dst.mkdir()
    manifest = json.loads((src / "manifest.json").read_text())
    (dst / "manifest.json").write_text(json.dumps(manifest))
    data = bytearray((src / "embedder.int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (dst / "embedder.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 mismatch"):
        DVectorEmbedder(dst)


def _sherpa_model() -> Path:
    models = embedder_dir().parent
    for d in installed_models(models):
        m = read_manifest(d)
        if m.engine in ("speaker-embedding", "sherpa-speaker-embedding") and (
                m.get("sherpa_embedding") or m.engine == "sherpa-speaker-embedding"):
            return d
    pytest.skip(f"no sherpa-onnx speaker-embedding model in {models} (e.g. 3D-Speaker CAM++ "
                "3dspeaker_speech_campplus_sv_en_voxceleb_16k.onnx, with a manifest saying "
                '"engine": "speaker-embedding", "sherpa_embedding": true, "model": "<file>.onnx")')


def test_sherpa_embedder_separates_voices():
    model_dir = _sherpa_model()
    emb = make_embedder(replace(DiarizeConfig(), model=str(model_dir)), model_dir.parent)
    assert isinstance(emb, SherpaEmbedder)
    a, b = recordings("librivox")[0], recordings("librivox")[2]
    va, vb, vf = emb.embed(a), emb.embed(b), emb.embed(female(CLINIC[0]))
    assert float(va @ vb) > float(va @ vf) + 0.2
    centres, vectors = emb.window_embeddings(a)
    assert len(centres) == len(vectors) >= 2


def test_embedding_cost_per_second_of_audio():
    """CPU time of one thread (not wall time: other work on the machine must not count)."""
    embedder = shared_embedder().inner  # not the tests' memo
    speech = np.concatenate(recordings("librivox")[:2])  # 10 s
    embedder.embed(speech[:RATE])  # warm up
    costs = []
    for seconds in (1.5, 3.0, 10.0):
        clip = speech[: int(seconds * RATE)]
        t0 = time.thread_time()
        embedder.window_embeddings(clip)
        costs.append((time.thread_time() - t0) / seconds)
    print(f"embedding cost, ms per s of audio at 1.5/3/10 s utterances: {[round(c * 1000) for c in costs]}")
    assert max(costs) < 0.3  # a loose regression bound; the measured figures are ~0.07-0.09
