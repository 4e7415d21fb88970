"""Convert CTranslate2 Whisper weights to ONNX: the fast layout and the sherpa-onnx layout.

numpy + onnx + onnxruntime's quantizer only (no torch, no ctranslate2). Files written:

    encoder.int8.onnx, decoder.int8.onnx   our runtime (``WhisperOnnx``)
    <name>-encoder.int8.onnx, <name>-decoder.int8.onnx, <name>-tokens.txt   sherpa-onnx
    tokenizer.json                          prompts are encoded with it on the device

(without quantization the names lose ``.int8``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import onnx

from appliance.asr.quantize import quantize_int8
from appliance.asr.whisper.ct2 import Ct2Model
from appliance.asr.whisper.onnx_graphs import build_decoder, build_encoder
from appliance.asr.whisper.reference import Dims, dims_of
from appliance.asr.whisper.tokenizer import WhisperTokenizer

EXPORT_VERSION = "3"  # bump when the files change, so installs are rebuilt
_SIZES = {384: "tiny", 512: "base", 768: "small", 1024: "medium", 1280: "large"}


def model_name(dims: Dims, tokenizer: WhisperTokenizer) -> str:
    """sherpa-onnx's file prefix: tiny.en, base, ..."""
    size = _SIZES.get(dims.n_text_state, f"whisper{dims.n_text_state}")
    return size if tokenizer.is_multilingual else size + ".en"


def suppress_lists(ct2_dir: Path, tokenizer: WhisperTokenizer) -> tuple[list[int], list[int]]:
    """Token ids never to sample, and those not to sample first (config.json, else Whisper's defaults)."""
    cfg_path = ct2_dir / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
    sp = tokenizer.specials
    suppress = [int(i) for i in cfg.get("suppress_ids", [])]
    begin = [int(i) for i in cfg.get("suppress_ids_begin", [tokenizer.encode(" ")[0], sp.eot])]
    return suppress, begin


def metadata(dims: Dims, tokenizer: WhisperTokenizer, name: str, suppress: list[int]) -> dict[str, object]:
    """The encoder metadata sherpa-onnx reads (scripts/whisper/export-onnx.py's keys); our runtime too."""
    sp = tokenizer.specials
    sot_sequence = [sp.sot] if not tokenizer.is_multilingual else [sp.sot, sp.language["en"], sp.transcribe]
    langs = sorted(sp.language.items(), key=lambda kv: kv[1])

    def csv(values: list) -> str:
        return ",".join(str(v) for v in values)

    return {
        "model_type": f"whisper-{name}", "version": "1", "maintainer": "exam-scribe",
        "n_mels": dims.n_mels, "n_audio_ctx": dims.n_audio_ctx, "n_audio_state": dims.n_audio_state,
        "n_audio_head": dims.n_audio_head, "n_audio_layer": dims.n_audio_layer, "n_vocab": dims.n_vocab,
        "n_text_ctx": dims.n_text_ctx, "n_text_state": dims.n_text_state, "n_text_head": dims.n_text_head,
        "n_text_layer": dims.n_text_layer, "sot_sequence": csv(sot_sequence),
        "all_language_tokens": csv([i for _, i in langs]), "all_language_codes": csv([c for c, _ in langs]),
        "sot": sp.sot, "sot_index": 0, "eot": sp.eot, "blank_id": tokenizer.encode(" ")[0],
        "is_multilingual": int(tokenizer.is_multilingual), "no_speech": sp.no_speech,
        "non_speech_tokens": csv([i for i in suppress if i < sp.eot]), "transcribe": sp.transcribe,
        "translate": sp.translate, "sot_prev": sp.sot_prev, "sot_lm": sp.sot_lm, "no_timestamps": sp.no_timestamps,
    }


def write_tokens(tokenizer: WhisperTokenizer, path: Path) -> None:
    """sherpa-onnx's Whisper tokens file: ``base64(token bytes) id`` per text token."""
    lines = [f"{base64.b64encode(tokenizer.token_bytes[i]).decode('ascii')} {i}\n"
             for i in sorted(tokenizer.token_bytes) if i < tokenizer.specials.eot]
    path.write_text("".join(lines), encoding="utf-8")


def _quantize(model: onnx.ModelProto, out: Path, per_channel: bool) -> None:
    quantize_int8(model, out, per_channel=per_channel)
    # The quantizer drops nothing we need but may reorder metadata; keep ours authoritative.
    q = onnx.load(out)
    del q.metadata_props[:]
    q.metadata_props.extend(model.metadata_props)
    onnx.save(q, out)


def _save(model: onnx.ModelProto, meta: dict[str, object], path: Path, quantize: bool, per_channel: bool) -> Path:
    onnx.helper.set_model_props(model, {k: str(v) for k, v in meta.items()})
    tmp = path.with_name(path.name + ".tmp")
    if quantize:
        _quantize(model, tmp, per_channel)
    else:
        onnx.save(model, tmp)
    os.replace(tmp, path)
    return path


def export_whisper(ct2_dir: Path, out_dir: Path, *, quantize: bool = True,
                   progress: Callable[[str], None] | None = None) -> list[Path]:
    """Write both ONNX layouts of the CTranslate2 Whisper model in ``ct2_dir`` into ``out_dir``."""
    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    say = progress or (lambda _msg: None)
    for required in ("model.bin", "tokenizer.json"):
        if not (ct2_dir / required).is_file():
            raise FileNotFoundError(f"{ct2_dir / required} is missing (a CTranslate2 Whisper model directory?)")
    out_dir.mkdir(parents=True, exist_ok=True)
    model = Ct2Model(ct2_dir)
    if model.spec != "WhisperSpec":
        raise ValueError(f"{ct2_dir / 'model.bin'} holds a {model.spec}, not a Whisper model")
    dims = dims_of(model)
    tokenizer = WhisperTokenizer(ct2_dir / "tokenizer.json")
    name = model_name(dims, tokenizer)
    suppress, begin = suppress_lists(ct2_dir, tokenizer)
    meta = metadata(dims, tokenizer, name, suppress)
    fast_meta = {**meta, "layout": "fast", "export_version": EXPORT_VERSION,
                 "suppress_ids": ",".join(map(str, suppress)), "suppress_ids_begin": ",".join(map(str, begin))}
    q = ".int8" if quantize else ""
    say(f"Whisper {name}: {dims.n_audio_layer}+{dims.n_text_layer} layers, d_model {dims.n_text_state}, "
        f"vocabulary {dims.n_vocab}")
    outputs: list[Path] = []
    # Per-channel weights for the encoder: its logits' KL divergence from float fell from 0.017
    # to 0.006 at the same speed. The decoder stays per-tensor: per-channel made it worse
    # (KL 0.008 → 0.08, teacher-forced top-1 agreement 0.97 → 0.95) on this ONNX Runtime.
    jobs = [
        ("encoder (fast layout)", lambda: build_encoder(model, dims, "fast"), fast_meta, f"encoder{q}.onnx"),
        ("decoder (fast layout)", lambda: build_decoder(model, dims, "fast", quantize), fast_meta,
         f"decoder{q}.onnx"),
        ("encoder (sherpa-onnx layout)", lambda: build_encoder(model, dims, "sherpa"), meta,
         f"{name}-encoder{q}.onnx"),
        ("decoder (sherpa-onnx layout)", lambda: build_decoder(model, dims, "sherpa", quantize), {},
         f"{name}-decoder{q}.onnx"),
    ]
    for label, build, job_meta, filename in jobs:
        say(f"building {label}{' and quantizing to int8' if quantize else ''}")
        outputs.append(_save(build(), job_meta, out_dir / filename, quantize, per_channel="encoder" in label))
    tokens = out_dir / f"{name}-tokens.txt"
    write_tokens(tokenizer, tokens)
    outputs.append(tokens)
    for extra in ("tokenizer.json", "config.json"):
        if (ct2_dir / extra).is_file():
            shutil.copyfile(ct2_dir / extra, out_dir / extra)
            outputs.append(out_dir / extra)
    say(f"wrote {len(outputs)} files, {sum(p.stat().st_size for p in outputs) / 1e6:.1f} MB")
    return outputs
