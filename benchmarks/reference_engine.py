"""faster-whisper (CTranslate2) behind our Engine contract: the reference in the ASR benchmark.

Same tiny.en weights, int8, beam 1 (greedy) or 5, no timestamps, fed the same utterances by
the same VAD, so the comparison isolates the recognizer.
"""

from __future__ import annotations

import numpy as np

from appliance.asr.engine import NoVisitContext, Recognition
from appliance.asr.registry import Abilities


class _Stream:
    def __init__(self, model: object, beam: int) -> None:
        self.model = model
        self.beam = beam
        self.chunks: list[np.ndarray] = []

    def accept(self, samples: np.ndarray) -> None:
        self.chunks.append(samples)

    def partial(self) -> str:
        return self._decode().text

    def cancel(self) -> None:
        pass  # CTranslate2 cannot stop a decode

    def finish(self) -> Recognition:
        return self._decode()

    def _decode(self) -> Recognition:
        audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        segments, _ = self.model.transcribe(  # type: ignore[attr-defined]
            audio, language="en", beam_size=self.beam, best_of=1, temperature=0.0, without_timestamps=True,
            condition_on_previous_text=False, vad_filter=False,
        )
        text = " ".join(s.text.strip() for s in segments).strip()
        return Recognition(text=text, no_speech=not text)


class FasterWhisperEngine(NoVisitContext):
    # Not offline, though it decodes at finish(): the benchmark measures it without early decoding.
    abilities = Abilities(offline=False, vocabulary=False, visit_context=False)

    def __init__(self, ct2_dir: str, threads: int, beam: int = 1) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(ct2_dir, device="cpu", compute_type="int8", cpu_threads=threads)
        self.beam = beam
        self.name = f"faster-whisper:tiny.en-int8-beam{beam}"

    def new_stream(self, start_s: float | None = None) -> _Stream:
        return _Stream(self.model, self.beam)
