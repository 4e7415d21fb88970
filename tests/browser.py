"""Browser tests of the touch panel: a real daemon serving it, Debian's Chromium driven by Playwright.

Playwright's own browser download is never used: Chromium comes from the distribution
(/usr/bin/chromium, `make deps` installs it). Screenshots go to tests/artifacts/panel/ (not committed).
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.daemon import DaemonProcess, free_port  # noqa: F401 (re-exported for the panel tests)

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "panel"
SIZES = {"800x480": (800, 480), "720x1280": (720, 1280), "1280x800": (1280, 800)}


def panel_config(tmp: Path, audio: Path | None, port: int, *, models_dir: Path | None, extra: str = "",
                 capture: str = "", asr: str | None = None, realtime: bool = True) -> Path:
    """Config of a daemon replaying ``audio`` (in real time unless ``realtime`` is False) and
    serving the panel on ``port``.

    With ``models_dir`` the real recognizer and diarizer run (the defaults); without, timing only.
    ``asr``: the [asr] section's lines instead (the VAD is then the energy one, as timing only).
    With ``audio`` None the capture is whatever ``capture`` says (e.g. source = "portaudio").
    """
    speech = f'models_dir = "{models_dir}"\n' if models_dir else f'models_dir = "{tmp / "models"}"\n'
    if asr is None:
        asr = "" if models_dir else 'engine = "none"\n'
    asr = f'[asr]\n{asr}[vad]\nengine = "energy"\n' if asr else ""
    source = f'source = "file"\nfile = "{audio}"\nrealtime = {str(realtime).lower()}\n' if audio is not None else ""
    cfg = tmp / "appliance.toml"
    cfg.write_text(
        f'[paths]\nstate_dir = "{tmp / "state"}"\n{speech}'
        f'[capture]\n{source}{capture}\n'
        f'[daemon]\ncontrol_socket = "{tmp / "ctl.sock"}"\nstatus_interval_s = 0.2\n'
        f'{asr}[panel]\nport = {port}\n{extra}\n'
    )
    return cfg


def quiet_wav(path: Path, seconds: int = 300, seed: int = 5) -> Path:
    """A microphone in a silent room for the replayed capture: noise at -80 dBFS, 16 kHz mono."""
    rng = np.random.default_rng(seed)
    sf.write(path, rng.normal(0, 1e-4, 16000 * seconds).astype(np.float32), 16000)
    return path


@contextlib.contextmanager
def panel_daemon(config: Path, port: int, env: dict[str, str] | None = None) -> Iterator[tuple[DaemonProcess, str]]:
    with DaemonProcess(config, env=env) as d:
        base = f"http://127.0.0.1:{port}"
        wait_for_panel(d, base)
        yield d, base


def wait_for_panel(d: DaemonProcess, base: str, timeout: float = 30.0) -> None:
    """Until the daemon's panel answers (it starts after the control socket)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(base + "/status", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"panel did not come up:\n{d.log.read_text()}") from None
            time.sleep(0.2)


def set_pin_via_first_run(page: Any, base: str, pin: str, screen: str = "/history") -> None:
    """First use: a PIN-protected screen asks to set the PIN, then shows the screen."""
    page.goto(base + screen)
    assert "/unlock" in page.url
    page.fill("#pin", pin)
    page.fill("#confirm", pin)
    page.click("#setpin")
    page.wait_for_url(base + screen)


def enter_pin(page: Any, pin: str) -> None:
    """Type the PIN on the on-screen keypad, as on the device."""
    page.fill("#pin", "")
    for digit in pin:
        page.click(f'.keypad button[data-key="{digit}"]')
    page.click('.keypad button[data-key="OK"]')


def stop_on_panel(page: Any) -> None:
    """Stop the visit from the Recording screen: Stop, then "Yes, stop" (the panel asks first)."""
    page.click("#stop")
    page.click("#stop-confirm")


def start_visit(page: Any, base: str, name: str) -> None:
    """Start a visit for `name` from the Start screen and wait for the Recording screen's load."""
    page.goto(base + "/")
    page.fill("#name", name)
    with page.expect_navigation():
        page.click("#start")


def status(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/status", timeout=5) as r:
        return json.loads(r.read())


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: install Debian's chromium package (make deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def new_page(browser: Any, size: str = "1280x800") -> Any:
    w, h = SIZES[size]
    context = browser.new_context(viewport={"width": w, "height": h}, has_touch=True, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def shot(page: Any, name: str, sizes: tuple[str, ...] = tuple(SIZES)) -> list[Path]:
    """Screenshots of the current screen at each size; the viewport is restored afterwards."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    paths = []
    for size in sizes:
        w, h = SIZES[size]
        page.set_viewport_size({"width": w, "height": h})
        page.wait_for_timeout(150)  # layout settles (media queries)
        path = ARTIFACTS / f"{name}-{size}.png"
        page.screenshot(path=str(path))
        paths.append(path)
    page.set_viewport_size(before)
    return paths


def small_targets(page: Any, minimum: int = 48) -> list[str]:
    """Visible buttons, links and inputs smaller than ``minimum`` px in either direction."""
    return page.evaluate(
        """(min) => Array.from(document.querySelectorAll('button, a, input:not([type=hidden]), select, summary'))
            .filter(e => { const r = e.getBoundingClientRect(); const st = getComputedStyle(e);
                           return r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && st.opacity !== '0'; })
            .map(e => { const t = (e.tagName === 'INPUT' && e.closest('label')) || e;  // a label is the target
                        return [e, t.getBoundingClientRect()]; })
            .filter(([e, r]) => r.height < min || r.width < min)
            .map(([e, r]) => `${e.tagName.toLowerCase()}#${e.id || ''}.${e.className || ''} ` +
                             `${Math.round(r.width)}x${Math.round(r.height)} ` +
                             `"${(e.textContent || '').trim().slice(0, 30)}"`)""",
        minimum,
    )


def in_view(page: Any, selector: str) -> bool:
    """The first element matching ``selector`` is shown and wholly inside the viewport as it is now scrolled."""
    return bool(page.evaluate(
        """(sel) => { const e = document.querySelector(sel); if (!e) return false;
            const r = e.getBoundingClientRect();
            return r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight + 0.5
                   && r.right <= innerWidth + 0.5; }""", selector))
