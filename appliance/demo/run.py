"""`appliance demo`: Mosquitto, the clinic server and the room daemon on this machine; the bundled
recording replayed as the room's microphone; the visit stopped and sent on the panel, and the
SOAP note the clinic sent back printed as the panel's Review screen shows it.

Every step says what it does. Ctrl-C (or SIGTERM) stops the three processes and removes the
demo's temporary folder; without a terminal, or with DEMO_ONCE=1, the demo ends by itself after
printing the note.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.capture.status import MSG_FINISHED
from appliance.demo import bundled_recording
from appliance.demo import stack as stack_
from appliance.demo.panel_client import PanelClient

DEVICE, SITE = "room-demo", "demo-site"
TEMPLATE = "SOAP"


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def wait_for(pred: Callable[[], Any], timeout: float, what: str, children: list[stack_.Child]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited; its log {child.log}:\n{child.tail()}")
        if value := pred():
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what} not within {timeout:.0f} s")


def print_live_lines(panel: PanelClient, stream_pass: str) -> None:
    """The live transcript as the Recording screen receives it (the panel's event stream)."""
    names: dict[str, str] = {}  # what the Recording screen calls each label ("S1" → "Speaker 1")
    try:
        for kind, data in panel.events(stream_pass):
            if kind == "status":
                names = data.get("speaker_names") or names
            elif kind == "segment" and data.get("text"):
                who = names.get(data["speaker"], data["speaker"].replace("S", "Speaker ", 1))
                print(f"    [{data['start']:6.1f} s] {who}: {data['text']}", flush=True)
    except OSError:
        pass  # the daemon stopped: the stream ends


def _terminate(*_: object) -> None:
    raise KeyboardInterrupt


def run_demo(models_dir: str = "models", audio: str | None = None, fast: bool = False, port: int = 8080,
             once: bool | None = None, keep: bool = False) -> int:
    """`once` None: end after the note when DEMO_ONCE=1 or stdin is not a terminal."""
    once = (os.environ.get("DEMO_ONCE") == "1" or not sys.stdin.isatty()) if once is None else once
    audio_path = Path(audio or bundled_recording()).resolve()
    models = Path(models_dir).resolve()
    if not audio_path.is_file():
        print(f"error: recording {audio_path} not found", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    work = Path(tempfile.mkdtemp(prefix="scribe-demo-"))
    stack = stack_.Stack(work, DEVICE)
    try:
        return _run(stack, models, audio_path, fast, port, once)
    except KeyboardInterrupt:
        print("\n==> interrupted", flush=True)
        return 130
    except (RuntimeError, TimeoutError, FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        stack.stop(say=step)
        if keep:
            step(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        step("all stopped")


def _run(stack: stack_.Stack, models: Path, audio: Path, fast: bool, port: int, once: bool) -> int:
    stack_.start_stack(stack, models, audio, realtime=not fast, panel_port=port, site=SITE, say=step)
    children, base = stack.children, stack.panel
    panel = PanelClient(base)
    step(f"panel: {base}/  (open it in a browser to watch the live transcript)")
    step(f"Start on the panel: a visit with the {TEMPLATE} note, the patient's consent ticked")
    panel.start("DEMO", [TEMPLATE])
    threading.Thread(target=print_live_lines, args=(panel, panel.recording_screen()), daemon=True).start()
    wait_for(lambda: _replayed(panel.status()), 60 + _duration(audio) * (0.5 if fast else 2.0),
             "the end of the recording", children)

    step("Stop on the panel (and \"Yes, stop\")")
    session_id = panel.stop()
    review = panel.review(session_id)
    step(f"Review: {len(review.lines)} lines; Send to clinic")
    panel.send(session_id)
    t_sent = time.monotonic()
    review = wait_for(lambda: (r := panel.review(session_id)).notes.get(TEMPLATE) and r, 180,
                      f"the {TEMPLATE} note on the panel", children)
    step(f"the clinic stored the transcript, wrote the note and sent it back in {time.monotonic() - t_sent:.1f} s; "
         f"the {TEMPLATE} note on the panel's Review screen:")
    print()
    print(review.notes[TEMPLATE])
    print(flush=True)
    if once:
        return 0
    step(f"still running: the panel {base}/review/{session_id} shows the visit and its note. "
         "Press Ctrl-C to stop everything.")
    while all(c.alive() for c in children):
        time.sleep(0.5)
    raise RuntimeError("a process of the demo exited: " + ", ".join(c.name for c in children if not c.alive()))


def _replayed(status: dict[str, Any]) -> bool:
    """The whole recording was captured and every utterance recognised."""
    cap = status.get("capture") or {}
    return cap.get("message") == MSG_FINISHED and status.get("pending_s", 1) == 0


def _duration(audio: Path) -> float:
    import soundfile as sf

    return float(sf.info(str(audio)).duration)
