"""`appliance demo`: a whole visit on built-in defaults, no hardware needed.

Replays the bundled 4-channel recording through the same capture → VAD → recognition →
store path the daemon uses, then prints the stored visit.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from importlib import resources
from pathlib import Path

from appliance.config.schema import ApplianceConfig
from appliance.daemon.service import build_controller

DEMO_AUDIO = "demo_visit.flac"


def bundled_recording() -> Path:
    return Path(str(resources.files("appliance.data").joinpath(DEMO_AUDIO)))


def demo_config(state_dir: str, models_dir: str, audio: str, realtime: bool) -> ApplianceConfig:
    base = ApplianceConfig()
    state = str(Path(state_dir).resolve())
    return dataclasses.replace(
        base,
        paths=dataclasses.replace(base.paths, state_dir=state, models_dir=str(Path(models_dir).resolve())),
        capture=dataclasses.replace(base.capture, source="file", file=audio, realtime=realtime),
        daemon=dataclasses.replace(base.daemon, control_socket=f"{state}/control.sock"),
    )


def run_demo(state_dir: str = "var/demo", models_dir: str = "models", audio: str | None = None,
             realtime: bool = False) -> int:
    audio = audio or str(bundled_recording())
    cfg = demo_config(state_dir, models_dir, audio, realtime)
    controller = build_controller(cfg)
    if controller.unavailable:
        print(f"error: {controller.unavailable}", file=sys.stderr)
        controller.store.close()
        return 2
    stop = threading.Event()
    worker = threading.Thread(target=controller.pipeline.run, args=(stop,), daemon=True, name="speech")
    worker.start()
    t0 = time.monotonic()
    session = controller.start(name="Demo visit", templates=("SOAP",), consent=True, actor="demo")
    print(f"recording visit {session.id} from {audio}")
    controller.wait_source_finished()
    session = controller.stop(actor="demo")
    stop.set()
    worker.join(5)
    store = controller.store
    segments = store.read_transcript(session.id, actor="demo", reason="demo output")
    final = store.get_session(session.id)
    print(f"visit {final.id}: {final.state}, {final.recorded_seconds:.1f} s recorded, "
          f"{len(segments)} utterances, replayed in {time.monotonic() - t0:.1f} s")
    for g in segments:
        text = g.text or "(speech, not recognised)"
        print(f"  [{g.start:6.2f}–{g.end:6.2f}] {g.speaker_name or '?':<10} {text}")
    if not segments:
        print("  no speech detected in this recording")
    print(f"stored in {cfg.store_path}")
    store.close()
    return 0
