"""The kiosk launcher: it waits for the panel, then starts Debian's Chromium full screen on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.browser import CHROMIUM, free_port
from tests.test_panel_app import Panel

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test

KIOSK = Path(__file__).resolve().parents[1] / "image" / "kiosk"


def test_kiosk_script_waits_for_the_panel_and_opens_it_in_chromium(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: install Debian's chromium package (make deps)")
    panel = Panel(tmp_path)
    port = free_port()
    server = make_server("127.0.0.1", port, panel.app, threaded=True)
    shot = tmp_path / "kiosk.png"
    env = {**os.environ, "KIOSK_URL": f"http://127.0.0.1:{port}/", "XDG_RUNTIME_DIR": str(tmp_path),
           "KIOSK_EXTRA_FLAGS": f"--headless=new --no-sandbox --window-size=800,480 --screenshot={shot}"}
    proc = subprocess.Popen([str(KIOSK / "kiosk.sh")], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # The panel comes up after the launcher: it must wait, not give up.
        threading.Timer(2.0, server.serve_forever).start()
        out, _ = proc.communicate(timeout=90)
    finally:
        server.shutdown()
        panel.close()
    assert proc.returncode == 0, out.decode(errors="replace")
    assert shot.stat().st_size > 5_000  # the rendered Start screen
    assert (tmp_path / "scribe-kiosk-profile").is_dir()  # the throwaway profile, in the runtime dir
    assert b"not answering" not in out


def test_kiosk_unit_is_a_valid_user_unit(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze missing (apt package systemd)")
    unit = (KIOSK / "scribe-kiosk.service").read_text().replace(
        "/opt/appliance/image/kiosk/kiosk.sh", str(KIOSK / "kiosk.sh"))
    (tmp_path / "scribe-kiosk.service").write_text(unit)
    r = subprocess.run(["systemd-analyze", "verify", "--user", str(tmp_path / "scribe-kiosk.service")],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "SYSTEMD_PAGER": ""})
    problems = [line for line in r.stderr.splitlines() if "scribe-kiosk" in line]
    assert problems == [], r.stderr
