"""Speaker-embedding models side by side: the device's d-vector model against every other
speaker-embedding model a registry package ships with its weights.

    python -m benchmarks.embedders [--split test|dev] [--models-dir models]

Of the PyPI speaker-embedding packages, only `resemblyzer` carries its weights in the wheel
(GE2E LSTM, 17 MB; run here in numpy, benchmarks/resemblyzer_np.py); `redimnet2-onnx`,
`speakeronnx`, `speakerlab(-slim)` and sherpa-onnx fetch theirs from a model hub at run time,
which this product (and this workplace) cannot do.

Each voice of the split says the same 10 exam-room sentences (real people: their own
recordings); every turn is embedded on its own, as the live labeller does. Reported:
- EER of "same person?" over all pairs of turns, by cosine similarity (lower is better);
- the mean cosine of turns of one voice and of two different voices, and their gap;
- cost: embedding seconds per second of audio at one thread (ONNX Runtime / numpy BLAS).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from itertools import combinations  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.rooms import BUNDLED, split_voices  # noqa: E402
from benchmarks.voices import RATE, VOICES, real_recordings, speak  # noqa: E402

SENTENCES = [text for _, text in BUNDLED[0][:10]]


def turns_of(split: str) -> list[tuple[str, np.ndarray]]:
    out = []
    for name in sorted(split_voices(split)):
        v = VOICES[name]
        clips = [a for a, _ in real_recordings(v)] if v.real else [speak(v, s) for s in SENTENCES]
        out += [(name, a) for a in clips]
    return out


def eer(same: np.ndarray, diff: np.ndarray) -> float:
    """Equal error rate of accepting 'same person' above a cosine threshold."""
    best = 1.0
    for thr in np.unique(np.concatenate([same, diff])):
        miss, fa = float(np.mean(same < thr)), float(np.mean(diff >= thr))
        best = min(best, max(miss, fa))
    return best


def measure(embedder, turns: list[tuple[str, np.ndarray]]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    vecs, who, spent = [], [], 0.0
    for name, audio in turns:
        t0 = time.process_time()
        v = embedder.embed(audio)
        spent += time.process_time() - t0
        if v is not None:
            vecs.append(v)
            who.append(name)
    m = np.stack(vecs)
    sim = m @ m.T
    pairs = list(combinations(range(len(who)), 2))
    same = np.array([sim[i, j] for i, j in pairs if who[i] == who[j]])
    diff = np.array([sim[i, j] for i, j in pairs if who[i] != who[j]])
    audio_s = sum(a.size for _, a in turns) / RATE
    return {"eer": eer(same, diff), "same": float(same.mean()), "diff": float(diff.mean()),
            "rtf": spent / audio_s, "turns": len(who), "audio_s": audio_s}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("test", "dev"), default="test")
    parser.add_argument("--models-dir", default=str(Path(__file__).resolve().parents[1] / "models"))
    args = parser.parse_args(argv)

    from appliance.config.schema import DiarizeConfig
    from appliance.diarize import make_embedder
    from benchmarks.resemblyzer_np import ResemblyzerEmbedder

    turns = turns_of(args.split)
    models = {"voicefilter d-vector (int8 ONNX, device)": make_embedder(DiarizeConfig(), args.models_dir, threads=1),
              "resemblyzer GE2E (numpy)": ResemblyzerEmbedder()}
    voices = sorted({n for n, _ in turns})
    print(f"{args.split} split: {len(voices)} voices ({', '.join(voices)}), {len(turns)} turns, "
          f"{sum(a.size for _, a in turns) / RATE:.0f} s")
    print(f"{'model':<42} {'EER %':>6} {'same':>6} {'diff':>6} {'gap':>6} {'CPU RTF':>8}")
    for name, embedder in models.items():
        r = measure(embedder, turns)
        print(f"{name:<42} {100 * r['eer']:6.1f} {r['same']:6.2f} {r['diff']:6.2f} {r['same'] - r['diff']:6.2f} "
              f"{r['rtf']:8.3f}", flush=True)


if __name__ == "__main__":
    main()
