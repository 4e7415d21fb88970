"""The panel app in-process (Flask test client, real controller, store and file capture).

Security rules that need no browser: CSRF on every state-changing route, headers, PIN hashing
and rate limit, auto-lock, who may see which transcript (and that each view is audited), LAN
mode refusals; plus the Settings tools (mic test, enrolment) on a replayed recording.
"""

from __future__ import annotations

import json
import re
import stat
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from appliance.asr.engine import Engine
from appliance.config import parse_config
from appliance.daemon.room import build_controller
from appliance.panel import create_app
from appliance.panel.server import PanelConfigError, check_exposure
from appliance.sync.service import DisabledSync
from tests.conftest import Clock

DEMO = str(resources.files("appliance.data") / "demo_visit.flac")
PIN = "2580"


class Panel:
    """A controller on a replayed file (no recognizer) and the panel app with a settable clock."""

    def __init__(self, tmp: Path, audio: str = DEMO, engine: Engine | None = None, **sections: dict) -> None:
        conf = {"paths": {"state_dir": str(tmp / "state"), "models_dir": str(tmp / "models")},
                "capture": {"source": "file", "file": audio, "realtime": False},
                "asr": {"engine": "none"}, "vad": {"engine": "energy"},
                "panel": {"auto_lock_s": 30.0, "pin_attempts": 3, "pin_lockout_s": 60.0}}
        for k, v in sections.items():
            conf[k] = {**conf.get(k, {}), **v}
        self.cfg = parse_config(conf)
        self.controller = build_controller(self.cfg, engine=engine)
        self.sync = DisabledSync(self.controller.store)  # sync is off in these configs
        self.stop_event = threading.Event()
        threading.Thread(target=self.controller.visit.run, args=(self.stop_event,), daemon=True).start()
        if self.controller.refiner is not None:
            threading.Thread(target=self.controller.refiner.run, args=(self.stop_event,), daemon=True).start()
        self.clock = Clock(1000.0)
        self.app = create_app(self.cfg, self.controller, self.sync, clock=self.clock)
        self.client = self.app.test_client()
        self.token = ""

    @property
    def store(self):
        return self.controller.store

    def get(self, url: str, **kw):
        r = self.client.get(url, **kw)
        m = re.search(r'name="csrf-token" content="([^"]+)"', r.get_data(as_text=True))
        if m:
            self.token = m.group(1)
        return r

    def post(self, url: str, data: dict | None = None, **kw):
        if not self.token:
            self.get("/")
        return self.client.post(url, data={"csrf_token": self.token, **(data or {})}, **kw)

    def visit(self) -> str:
        """A stopped visit of the whole recording; its id."""
        assert self.post("/start", {"name": "AB", "template": "SOAP"}).location == "/visit"
        assert self.client.get("/visit").status_code == 200  # the live screen, as the browser follows
        assert self.controller.wait_source_finished(60)
        r = self.post("/visit/stop", {"confirm": "yes"})
        return r.location.rsplit("/", 1)[1]

    def set_pin(self) -> None:
        r = self.post("/pin", {"pin": PIN, "confirm": PIN, "next": "/history"})
        assert r.status_code == 302 and r.location == "/history"

    def close(self) -> None:
        self.stop_event.set()
        self.store.close()


@pytest.fixture
def panel(tmp_path):
    p = Panel(tmp_path)
    yield p
    p.close()


@pytest.mark.slow
def test_every_state_changing_route_refuses_a_missing_or_wrong_csrf_token(panel):
    sid = panel.visit()
    seg = panel.store.read_transcript(sid, actor="test", reason="ids")[0].id
    revision = panel.store.get_session(sid).revision
    rules = [r for r in panel.app.url_map.iter_rules() if "POST" in (r.methods or set())]
    assert len(rules) >= 14
    for rule in rules:
        url = rule.rule.replace("<session_id>", sid).replace("<segment_id>", seg).replace("<action>", "pause")
        for data in ({}, {"csrf_token": "forged"}):
            r = panel.client.post(url, data={**data, "text": "x", "a": "S1", "b": "S2", "pin": PIN,
                                             "confirm": PIN, "name": "X"})
            assert r.status_code == 403, url
            assert "Nothing was changed" in r.get_data(as_text=True)
    assert panel.store.get_session(sid).revision == revision  # nothing was changed
    assert panel.controller.session is None and not (Path(panel.cfg.paths.state_dir) / "panel").exists()
    refused = [e for e in panel.store.audit_events() if e.action == "panel:csrf-refused"]
    assert len(refused) == 2 * len(rules)


@pytest.mark.slow
def test_security_headers_and_only_local_assets(panel):
    sid = panel.visit()
    for url in ("/", f"/review/{sid}", "/unlock", "/static/panel.css"):
        h = panel.client.get(url).headers
        assert "default-src 'self'" in h["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
        assert "unsafe-inline" not in h["Content-Security-Policy"]
        assert h["X-Content-Type-Options"] == "nosniff" and h["Referrer-Policy"] == "no-referrer"
        assert h["X-Frame-Options"] == "DENY"
    assert panel.client.get(f"/review/{sid}").headers["Cache-Control"] == "no-store"
    pkg = Path(resources.files("appliance.panel"))
    for f in [*pkg.glob("templates/*.html"), *pkg.glob("static/*")]:
        text = f.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), f  # no CDN, no web fonts
        assert "@import" not in text and "url(http" not in text
        if f.suffix == ".html":  # CSP forbids inline code and inline style attributes
            assert "<script>" not in text and "style=" not in text and " on" + "click=" not in text, f
    cookie = panel.app.test_client().get("/").headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


@pytest.mark.slow
def test_pin_is_stored_as_an_argon2_hash_and_guesses_are_rate_limited(panel):
    r = panel.post("/pin", {"pin": "1111", "confirm": "1111"})
    assert "too easy to guess" in panel.get(r.location).get_data(as_text=True)
    r = panel.post("/pin", {"pin": "2580", "confirm": "2581"})
    assert "not the same" in panel.get(r.location).get_data(as_text=True)
    panel.set_pin()
    path = Path(panel.cfg.paths.state_dir) / "panel" / "pin.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())["hash"]
    assert stored.startswith("$argon2id$") and PIN not in stored
    panel.post("/lock")
    for _ in range(3):
        r = panel.post("/unlock", {"pin": "9999", "next": "/history"})
        page = panel.get(r.location).get_data(as_text=True)
    assert "blocked for 60 seconds" in page
    r = panel.post("/unlock", {"pin": PIN, "next": "/history"})  # the right PIN, but too soon
    assert "/unlock" in r.location
    panel.clock.tick(61)
    r = panel.post("/unlock", {"pin": PIN, "next": "/history"})
    assert r.location == "/history" and panel.client.get("/history").status_code == 200
    actions = [e.action for e in panel.store.audit_events()]
    assert actions.count("panel:pin-failed") == 4 and "panel:unlock" in actions and "panel:pin-set" in actions


@pytest.mark.slow
def test_the_room_sees_only_the_current_visit_and_auto_lock_hides_it(panel):
    old = panel.visit()
    panel.set_pin()
    panel.post("/lock")
    sid = panel.visit()
    assert panel.client.get(f"/review/{sid}").status_code == 200  # the visit just stopped: no PIN
    r = panel.client.get(f"/review/{old}")  # an earlier patient's: PIN
    assert r.status_code == 302 and r.location.startswith("/unlock")
    for url in ("/history", "/settings"):
        assert panel.client.get(url).location.startswith("/unlock")
    reads = [e.detail["reason"] for e in panel.store.audit_events(sid) if e.action == "read" and e.actor == "panel"]
    assert reads == ["live transcript", "review"]  # every view of the text is audited
    panel.clock.tick(31)  # nobody touched the panel
    r = panel.client.get(f"/review/{sid}")
    assert r.status_code == 302 and r.location.startswith("/unlock")
    assert "panel:auto-lock" in [e.action for e in panel.store.audit_events()]
    r = panel.post("/unlock", {"pin": PIN, "next": f"/review/{old}"})
    assert panel.client.get(r.location).status_code == 200
    panel.clock.tick(20)
    assert panel.client.get("/history").status_code == 200  # activity keeps it open
    panel.clock.tick(20)
    assert panel.client.get("/history").status_code == 200
    panel.clock.tick(31)
    assert panel.client.get("/history").status_code == 302


@pytest.mark.slow
def test_send_needs_consent_and_a_template_and_errors_are_plain_words(panel):
    sid = panel.visit()
    panel.post(f"/review/{sid}/details", {"name": "AB", "consent": "", "template": []})
    r = panel.post(f"/review/{sid}/send")
    assert "agreed to the recording" in panel.get(r.location).get_data(as_text=True)
    r = panel.post(f"/review/{sid}/send", {"consent": "yes"})
    assert "at least one note template" in panel.get(r.location).get_data(as_text=True)
    panel.post(f"/review/{sid}/details", {"name": "AB", "consent": "yes", "template": ["SOAP", "Custom?"]})
    assert panel.store.get_session(sid).templates == ("SOAP",)  # only offered templates
    r = panel.post(f"/review/{sid}/send")
    assert "Queued for the clinic" in panel.get(r.location).get_data(as_text=True)
    assert panel.store.get_session(sid).state == "queued"
    r = panel.post(f"/review/{sid}/segment/no-such-segment/text", {"text": "x"})
    assert "already deleted or changed" in panel.get(r.location).get_data(as_text=True)
    r = panel.post("/visit/pause")
    assert "no visit is in progress" in panel.get(r.location).get_data(as_text=True).lower()


def test_start_is_refused_in_plain_words_when_recording_is_impossible(panel):
    panel.controller.unavailable = "speech recognition is not available: model whisper-tiny.en is not installed"
    page = panel.get("/").get_data(as_text=True)
    assert "Recording is not possible: speech recognition is not available" in page
    assert re.search(r'id="start"\s+disabled', page)
    r = panel.post("/start", {"name": "X"})
    assert "Cannot start: speech recognition is not available" in panel.get(r.location).get_data(as_text=True)
    assert panel.store.list_sessions() == []


def test_live_text_goes_only_to_the_live_page_of_the_visit_in_progress(panel):
    hub = panel.app.extensions["panel"].hub
    live, other = hub.subscribe("A"), hub.subscribe(None)
    hub.publish("segment", {"session_id": "A", "id": "1", "speaker": "S1", "text": "secret words"})
    hub.publish("partial", {"session_id": "B", "text": "other visit"})
    assert live.q.get_nowait()[1]["text"] == "secret words"
    assert live.q.get_nowait()[1] == {"session_id": "B"}
    assert other.q.get_nowait()[1] == {"session_id": "A"}
    body = panel.client.get("/events", buffered=False)
    assert body.mimetype == "text/event-stream"
    first = next(body.response)
    first += next(body.response)
    assert "retry:" in first.decode() and "event: status" in first.decode()
    body.close()


def test_lan_mode_needs_tls_and_a_login(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    with pytest.raises(PanelConfigError, match=r"panel\.lan = true"):
        check_exposure(parse_config({"panel": {"host": "0.0.0.0"}}))
    with pytest.raises(PanelConfigError, match=r"needs panel\.tls_cert"):
        check_exposure(parse_config({"panel": {"host": "0.0.0.0", "lan": True}}))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "room")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(__import__("datetime").datetime(2024, 1, 1))
            .not_valid_after(__import__("datetime").datetime(2040, 1, 1)).sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    (tmp_path / "k.pem").chmod(0o600)  # a key every user can read is refused (appliance.config.rules)
    lan = {"host": "0.0.0.0", "lan": True, "tls_cert": str(tmp_path / "c.pem"), "tls_key": str(tmp_path / "k.pem")}
    assert check_exposure(parse_config({"panel": lan})) is not None
    p = Panel(tmp_path, panel=lan)
    try:
        remote = {"REMOTE_ADDR": "192.168.1.50"}
        r = p.client.get("/", environ_base=remote)
        assert r.status_code == 302 and r.location.startswith("/unlock")
        assert p.client.get("/events", environ_base=remote).status_code == 401
        assert p.client.get("/", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200  # the kiosk
        page = p.client.get("/unlock", environ_base=remote).get_data(as_text=True)
        assert "must be set on the device" in page  # the first PIN is never set over the network
        assert "Secure" in p.app.test_client().get("/").headers["Set-Cookie"]
        assert "Strict-Transport-Security" in p.client.get("/").headers
    finally:
        p.close()


@pytest.mark.slow
def test_mic_test_and_voice_enrolment_keep_only_the_voice_print(tmp_path):
    from tests.daemon import installed_models_dir
    from tests.test_diarize_voices import recordings

    models = installed_models_dir("voicefilter-embedder")
    reader = tmp_path / "clinician.wav"
    sf.write(reader, np.concatenate(recordings("librivox")), 16000)
    p = Panel(tmp_path, audio=str(reader), paths={"models_dir": str(models)},
              panel={"enrol_seconds": 20.0, "mic_test_seconds": 3.0})
    try:
        tools = p.app.extensions["panel"].tools
        p.set_pin()
        assert p.post("/settings/mic-test").status_code == 302
        levels = []
        deadline = time.monotonic() + 20
        while tools.status()["mode"] != "idle" and time.monotonic() < deadline:
            levels += tools.status().get("levels_dbfs", [])
            time.sleep(0.02)
        assert tools.status()["message"] == "Microphone test finished." and max(levels) > -50
        p.post("/settings/enrol", {"clinician": "Dr Example"})
        deadline = time.monotonic() + 60
        while tools.status()["mode"] != "idle" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tools.status()["result"] == "ok", tools.status()
        assert "Voice enrolled for Dr Example" in tools.status()["message"]
        state = Path(p.cfg.paths.state_dir)
        print_file = state / "enrolment" / "clinician.json"
        assert stat.S_IMODE(print_file.stat().st_mode) == 0o600
        assert set(json.loads(print_file.read_text())) == {"format", "clinician", "model", "created", "dim", "vector"}
        files = [f for f in state.rglob("*") if f.is_file()]
        assert all(f.suffix in (".json", ".db", ".db-wal", ".db-shm") or f.name.startswith("sessions.db")
                   for f in files), files
        assert "Enrolled: Dr Example" in p.get("/settings").get_data(as_text=True)
        # A visit takes the microphone back: the tools refuse while one is live.
        p.post("/start", {"name": "X"})
        r = p.post("/settings/mic-test")
        assert "stop it before using the microphone" in p.get(r.location).get_data(as_text=True)
        p.post("/visit/stop", {"confirm": "yes"})
    finally:
        p.close()


@pytest.mark.slow
def test_the_wrong_pin_count_and_lockout_survive_a_restart(tmp_path):
    from appliance.config.schema import PanelConfig
    from appliance.panel.pin import PinError, PinGuard

    cfg = PanelConfig(pin_attempts=3, pin_lockout_s=60.0)
    path = tmp_path / "state" / "panel" / "pin.json"
    clock = Clock(1000.0)
    guard = PinGuard(path, cfg, clock=clock)
    guard.set_pin(PIN, PIN)
    for _ in range(2):
        with pytest.raises(PinError, match="Wrong PIN"):
            guard.check("9999")
    attempts = path.with_name("pin-attempts.json")
    assert stat.S_IMODE(attempts.stat().st_mode) == 0o600
    assert json.loads(attempts.read_text())["failures"] == 2 and PIN not in attempts.read_text()
    # A restart (a new guard, and a monotonic clock that starts elsewhere) keeps the count: one more try.
    guard = PinGuard(path, cfg, clock=Clock(5.0))
    with pytest.raises(PinError, match="blocked for 60 seconds"):
        guard.check("9998")
    guard = PinGuard(path, cfg, clock=Clock(7.0))
    assert 55 < guard.lockout_remaining() <= 60
    with pytest.raises(PinError, match="Too many wrong PINs"):
        guard.check(PIN)  # even the right PIN, even after the restart
    # Once the lockout is over (wall time), the right PIN works and the count starts again.
    data = json.loads(attempts.read_text())
    attempts.write_text(json.dumps({**data, "locked_until": time.time() - 1}))
    guard = PinGuard(path, cfg, clock=Clock(9.0))
    assert guard.lockout_remaining() == 0
    guard.check(PIN)
    with pytest.raises(PinError, match="2 more tries"):
        guard.check("9997")
    # A damaged count file fails closed (a full lockout), never open.
    attempts.write_text("{not json")
    guard = PinGuard(path, cfg, clock=Clock(11.0))
    with pytest.raises(PinError, match="Too many wrong PINs"):
        guard.check(PIN)


@pytest.mark.slow
def test_review_offers_only_speakers_the_transcript_uses(panel):
    """A live label the hindsight pass at Stop replaced keeps its row and its "Speaker 2" name,
    which the re-clustered label now wears too: only the label in use may be offered for a swap."""
    sid = panel.visit()
    store = panel.store
    segs = store.read_transcript(sid, actor="test", reason="ids")
    assert len(segs) >= 2
    store.set_speaker_name(sid, "S2", "Speaker 2", actor="diarizer")  # the stale live label
    for i, g in enumerate(segs):
        store.set_segment_speaker(sid, g.id, "S1" if i % 2 == 0 else "S3", actor="diarizer")
    store.set_speaker_name(sid, "S1", "Speaker 1", actor="diarizer")
    store.set_speaker_name(sid, "S3", "Speaker 2", actor="diarizer")
    page = panel.get(f"/review/{sid}").get_data(as_text=True)
    swap_form = page[page.index('id="swap-form"'):]
    swap_form = swap_form[:swap_form.index("</form>")]
    offered = re.findall(r'<option value="(S\d+)"', swap_form)
    assert sorted(set(offered)) == ["S1", "S3"]


@pytest.mark.slow
def test_settings_counts_visits_in_plain_english(panel):
    panel.visit()
    panel.set_pin()
    storage = re.search(r'id="storage">([^<]*)<', panel.get("/settings").get_data(as_text=True)).group(1)
    assert " for 1 visit;" in storage, storage
    panel.visit()
    storage = re.search(r'id="storage">([^<]*)<', panel.get("/settings").get_data(as_text=True)).group(1)
    assert " for 2 visits;" in storage, storage
