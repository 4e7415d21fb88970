"""sherpa-onnx recognition: offline models (Whisper, Moonshine, SenseVoice) and streaming
transducer / CTC models.

File names come from the model's manifest.json, section ``sherpa``:

    "sherpa": {"kind": "whisper", "encoder": "tiny.en-encoder.int8.onnx",
               "decoder": "tiny.en-decoder.int8.onnx", "tokens": "tiny.en-tokens.txt"}
    "sherpa": {"kind": "transducer", "encoder": ..., "decoder": ..., "joiner": ...,
               "tokens": "tokens.txt", "modeling_unit": "bpe", "bpe_vocab": "bpe.vocab"}

Without that section the kind comes from the manifest's engine name (appliance.models
writes "sherpa-online-transducer" with top-level "encoder", "decoder", ... keys), and a
Whisper model exported for the whisper-onnx engine is found by its sherpa-onnx layout names
(``*-encoder*.onnx``, ``*-decoder*.onnx``, ``*-tokens.txt``). Every file is checked before
sherpa-onnx sees it, because sherpa-onnx ends the whole process on some bad inputs.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from appliance.asr.engine import NoVisitContext, Recognition
from appliance.asr.registry import ENGINES, engine_abilities
from appliance.asr.vocabulary import hotwords_plan, load_vocabulary, tokens_case, write_hotwords
from appliance.config.schema import AsrConfig
from appliance.models.manifest import Manifest, ModelError, read_manifest_json

log = logging.getLogger(__name__)

RATE = 16000
OFFLINE_KINDS: dict[str, tuple[str, ...]] = {
    "whisper": ("encoder", "decoder", "tokens"),
    "moonshine": ("preprocessor", "encoder", "uncached_decoder", "cached_decoder", "tokens"),
    "sense_voice": ("model", "tokens"),
}
ONLINE_KINDS: dict[str, tuple[str, ...]] = {
    "transducer": ("encoder", "decoder", "joiner", "tokens"),
    "zipformer2_ctc": ("model", "tokens"),
}
STREAM_TAIL_S = 0.66  # zeros after the utterance so a streaming encoder emits its last chunk


class ManifestError(ValueError):
    """The model directory or its manifest cannot drive this engine (message says what to fix)."""


def manifest_dict(model_dir: Path, manifest: Any = None) -> dict[str, Any]:
    """The manifest as its JSON layout, whatever form the caller has it in (read from
    ``model_dir`` when None: a hand-written manifest need not pin its files)."""
    if manifest is None:
        try:
            return read_manifest_json(model_dir)
        except ModelError as e:
            raise ManifestError(e.problem) from None
    if isinstance(manifest, Mapping):
        return dict(manifest)
    if isinstance(manifest, Manifest):
        return manifest.to_json()
    raise ManifestError(f"unsupported manifest object {type(manifest).__name__}")


def engine_kind(m: Mapping[str, Any], engine: str) -> str | None:
    """"transducer" from "sherpa-online-transducer" (in "engine" or the "engines" list)."""
    return ENGINES.spec(engine).kind(m)


def _infer_whisper(model_dir: Path) -> dict[str, str] | None:
    """The sherpa-onnx Whisper layout files of a directory, if it has them."""

    def pick(pattern: str) -> str | None:
        found = sorted(p.name for p in model_dir.glob(pattern))
        int8 = [n for n in found if ".int8." in n]  # prefer the quantised files, as the exporter ships
        names = int8 or found
        return names[0] if names else None

    spec = {"encoder": pick("*-encoder*.onnx"), "decoder": pick("*-decoder*.onnx"), "tokens": pick("*-tokens.txt")}
    return {"kind": "whisper", **spec} if all(spec.values()) else None  # type: ignore[dict-item]


_OPTIONS = ("bpe_vocab", "modeling_unit", "model_type", "decoding_method", "hotwords_score", "hotwords_case",
            "tail_paddings", "multilingual", "use_itn")


def model_spec(model_dir: Path | str, manifest: Any, kinds: Mapping[str, Sequence[str]],
               prefix: str) -> dict[str, Any]:
    """Kind, options and files (as existing absolute paths) of a sherpa-onnx model.

    From the manifest's "sherpa" section if it has one; otherwise the kind comes from the
    engine name ("sherpa-online-transducer") and the file names from top-level keys, and a
    Whisper model's files from their sherpa-onnx layout names."""
    model_dir = Path(model_dir)
    m = manifest_dict(model_dir, manifest)
    where = f"{model_dir}/manifest.json"
    section = m.get("sherpa")
    if section is not None and not isinstance(section, Mapping):
        raise ManifestError(f"{where}: \"sherpa\" must be an object, not {type(section).__name__}")
    if section is None:
        kind = engine_kind(m, prefix)
        section = {"kind": kind, **{k: m[k] for k in (*kinds.get(kind or "", ()), *_OPTIONS) if k in m}}
        if kind in (None, "whisper") and "whisper" in kinds and not all(section.get(k) for k in kinds["whisper"]):
            section = {**section, **(_infer_whisper(model_dir) or {})}
    spec: dict[str, Any] = dict(section)
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in kinds:
        raise ManifestError(
            f"{where}: model kind {kind!r} cannot run on {prefix} (it runs {', '.join(kinds)}); "
            f"pick the engine the model was made for"
        )
    for key in (*kinds[kind], *(k for k in ("bpe_vocab",) if spec.get(k))):
        name = spec.get(key)
        if not isinstance(name, str) or not name:
            raise ManifestError(f"{where}: a {kind} model needs the file name \"{key}\" in the manifest")
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts:  # not resolve(): installed files may be symlinks
            raise ManifestError(f"{where}: {key} = {name!r} points outside the model directory")
        path = model_dir.absolute() / rel
        if not path.is_file():
            raise ManifestError(f"model file {path} ({key}) is missing; reinstall the model")
        spec[key] = str(path)
    spec["name"] = str(m.get("name") or model_dir.name)
    return spec


_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|<\|[^|]*\|>")  # [BLANK_AUDIO], (music), <|nospeech|>


def is_empty_text(text: str) -> bool:
    """True when the text holds no word: empty, punctuation only, or only annotations."""
    rest = _ANNOTATION.sub(" ", text)
    return not any(unicodedata.category(c)[0] in "LN" for c in rest)


_LOOP = re.compile(r"(.{1,40}?)\1{3,}\s*$", re.DOTALL)


def cut_loop(text: str) -> str:
    """Cut a repetition loop at the end ("Take a C.C.C.C.C.C.C"): sherpa-onnx's Whisper decoder
    has no guard and runs to its token limit. A block of 1-40 characters repeated 4+ times,
    at least 8 characters in all, is kept once; "hmmmm" or "no, no" are left alone."""
    m = _LOOP.search(text)
    if m is None or len(m.group(0).strip()) < 8:
        return text
    return (text[:m.start()] + m.group(1)).rstrip()


def _recognition(text: str, log_probs: Sequence[float] = ()) -> Recognition:
    text = cut_loop(" ".join(text.split()))
    if is_empty_text(text):
        return Recognition(text="", no_speech=True)
    avg = float(np.mean(log_probs)) if len(log_probs) else None
    return Recognition(text=text, avg_logprob=avg)


def _mono(samples: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(samples, dtype=np.float32).reshape(-1))


def _build_offline(spec: Mapping[str, Any], cfg: AsrConfig) -> Any:
    import sherpa_onnx

    kind, threads = spec["kind"], cfg.threads
    if kind == "whisper":
        multilingual = spec.get("multilingual", not spec["name"].endswith(".en"))
        return sherpa_onnx.OfflineRecognizer.from_whisper(
            encoder=spec["encoder"], decoder=spec["decoder"], tokens=spec["tokens"],
            language=cfg.language if multilingual else "", task="transcribe", num_threads=threads,
            tail_paddings=int(spec.get("tail_paddings", -1)),
        )
    if kind == "moonshine":
        return sherpa_onnx.OfflineRecognizer.from_moonshine(
            preprocessor=spec["preprocessor"], encoder=spec["encoder"], uncached_decoder=spec["uncached_decoder"],
            cached_decoder=spec["cached_decoder"], tokens=spec["tokens"], num_threads=threads,
        )
    return sherpa_onnx.OfflineRecognizer.from_sense_voice(
        model=spec["model"], tokens=spec["tokens"], num_threads=threads, language=cfg.language or "auto",
        use_itn=bool(spec.get("use_itn", True)),  # ITN adds punctuation and casing
    )


class SherpaOfflineEngine(NoVisitContext):
    """Whole-utterance models: the stream keeps the audio and decodes it on demand."""

    abilities = engine_abilities("sherpa-offline")
    MIN_SAMPLES = RATE // 20  # below 50 ms there is nothing to recognise

    def __init__(self, model_dir: Path | str, cfg: AsrConfig, manifest: Any = None) -> None:
        self.spec = model_spec(model_dir, manifest, OFFLINE_KINDS, "sherpa-offline")
        if cfg.vocabulary or cfg.vocabulary_file:
            log.info("sherpa-offline (%s) ignores asr.vocabulary: only transducers take hotwords", self.spec["kind"])
        self.recognizer = _build_offline(self.spec, cfg)
        self.name = f"sherpa-offline:{self.spec['name']}"
        self._lock = threading.Lock()  # partial() from the panel may race the worker's finish()

    def new_stream(self, start_s: float | None = None) -> SherpaOfflineStream:
        return SherpaOfflineStream(self)

    def decode(self, audio: np.ndarray) -> Recognition:
        if audio.size < self.MIN_SAMPLES:
            return Recognition(text="", no_speech=True)
        with self._lock:
            s = self.recognizer.create_stream()
            s.accept_waveform(RATE, audio)
            self.recognizer.decode_stream(s)
            r = s.result
        return _recognition(r.text, list(getattr(r, "ys_log_probs", []) or []))


class SherpaOfflineStream:
    def __init__(self, engine: SherpaOfflineEngine) -> None:
        self._engine = engine
        self._chunks: list[np.ndarray] = []
        self._last: tuple[int, Recognition] | None = None  # (samples, result): unchanged audio is not re-decoded

    def accept(self, samples: np.ndarray) -> None:
        self._chunks.append(_mono(samples))

    def _audio(self) -> np.ndarray:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else np.zeros(0, np.float32)

    def _decode(self) -> Recognition:
        audio = self._audio()
        if self._last is None or self._last[0] != audio.size:  # greedy decoding: same audio, same text
            self._last = (audio.size, self._engine.decode(audio))
        return self._last[1]

    def partial(self) -> str:
        return self._decode().text

    def cancel(self) -> None:
        pass  # sherpa-onnx cannot stop a decode; partial() on a whole utterance is one short pass

    def finish(self) -> Recognition:
        result = self._decode()
        self._chunks = []  # the utterance's audio is dropped as soon as it is transcribed
        return result


class SherpaOnlineEngine(NoVisitContext):
    """Streaming transducer / CTC: decodes while samples arrive; partial() is the running result."""

    abilities = engine_abilities("sherpa-online")

    def __init__(self, model_dir: Path | str, cfg: AsrConfig, manifest: Any = None,
                 vocabulary: Sequence[str] | None = None) -> None:
        import sherpa_onnx

        self.spec = spec = model_spec(model_dir, manifest, ONLINE_KINDS, "sherpa-online")
        self.name = f"sherpa-online:{spec['name']}"
        vocab = load_vocabulary(cfg) if vocabulary is None else tuple(vocabulary)
        lines, why_not = hotwords_plan(spec, vocab)
        if vocab and not lines:
            log.warning("asr.vocabulary not used by %s: %s", self.name, why_not)
        self.hotwords = tuple(lines)
        self.upper_model = tokens_case(spec["tokens"]) == "upper"
        if spec["kind"] == "zipformer2_ctc":
            self.recognizer = sherpa_onnx.OnlineRecognizer.from_zipformer2_ctc(
                tokens=spec["tokens"], model=spec["model"], num_threads=cfg.threads,
            )
            return
        kwargs: dict[str, Any] = dict(
            tokens=spec["tokens"], encoder=spec["encoder"], decoder=spec["decoder"], joiner=spec["joiner"],
            num_threads=cfg.threads, model_type=spec.get("model_type", ""),
            decoding_method=spec.get("decoding_method", "greedy_search"),
        )
        path = None
        if lines:
            path = write_hotwords(lines)
            kwargs.update(
                decoding_method="modified_beam_search", hotwords_file=path,
                hotwords_score=float(spec.get("hotwords_score", 1.5)),
                modeling_unit=spec.get("modeling_unit", "bpe"), bpe_vocab=spec.get("bpe_vocab", ""),
            )
        try:
            self.recognizer = sherpa_onnx.OnlineRecognizer.from_transducer(**kwargs)
        finally:
            if path:
                os.unlink(path)

    def new_stream(self, start_s: float | None = None) -> SherpaOnlineStream:
        return SherpaOnlineStream(self)

    def tidy(self, text: str) -> str:
        text = " ".join(text.split())
        if self.upper_model and text:
            text = text.lower()
            text = text[0].upper() + text[1:]
        return text


class SherpaOnlineStream:
    def __init__(self, engine: SherpaOnlineEngine) -> None:
        self._engine = engine
        self._rec = engine.recognizer
        self._stream = self._rec.create_stream()
        self._finished = False

    def _decode_ready(self) -> None:
        while self._rec.is_ready(self._stream):
            self._rec.decode_stream(self._stream)

    def accept(self, samples: np.ndarray) -> None:
        if self._finished:
            raise RuntimeError("accept() after finish(): start a new stream for the next utterance")
        self._stream.accept_waveform(RATE, _mono(samples))
        self._decode_ready()

    def partial(self) -> str:
        return self._engine.tidy(self._rec.get_result(self._stream))

    def cancel(self) -> None:
        pass  # partial() only reads the running result: nothing to abandon

    def finish(self) -> Recognition:
        if not self._finished:
            self._stream.accept_waveform(RATE, np.zeros(int(STREAM_TAIL_S * RATE), np.float32))
            self._stream.input_finished()
            self._decode_ready()
            self._finished = True
        return _recognition(self._engine.tidy(self._rec.get_result(self._stream)))
