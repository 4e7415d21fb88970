"""The whole path with every part real: the room daemon (`appliance run`, real recognition and
diarization) replaying a visit as its microphone, Mosquitto (shipped config, TLS, the ACL of
scripts/pki/make-acl.sh, certificates from scripts/pki) and the clinic server (`clinic run`,
built-in note generator on), all separate processes. The visit is driven through the panel's
HTTP endpoints as a browser drives them (one cookie session, CSRF token from each page, Stop
confirmed, PIN typed).

Checked: the clinic stored exactly the reviewed revision; a note for each requested template came
back and is on Review; every view of the transcript is in the audit log on its side; after the
(short) retention period the device purged the visit while the clinic kept it; and no audio
bytes are on disk anywhere: device state, every process's TMPDIR, broker persistence, clinic.
"""

from __future__ import annotations

import getpass
import json
import subprocess
from pathlib import Path

import pytest
import soundfile as sf

from appliance.capture.status import MSG_FINISHED
from appliance.demo import bundled_recording, stack
from appliance.demo.panel_client import PanelClient, ReviewPage
from appliance.panel.wording import state_words
from appliance.store import State, open_store
from clinic.store import SqliteTranscriptStore
from tests.broker import Broker, make_pki, sync_toml, wait_until
from tests.browser import panel_config, panel_daemon
from tests.browser import wait_until as wait_for_value
from tests.daemon import free_port, installed_models_dir
from tests.test_no_audio_on_disk import audio_found, probes

pytestmark = pytest.mark.slow

PIN = "2580"
TEMPLATES = ["SOAP", "Patient Instructions"]
KEEP_S = 40.0  # retention on the device after the clinic's ack


def clinic_show(cfg: Path, session_id: str, reason: str) -> dict:
    """A person at the clinic reads the transcript (`clinic sessions show`, audited)."""
    out = subprocess.run([stack.clinic_exe(), "--config", str(cfg), "sessions", "show", session_id, "--reason", reason],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_visit_from_the_room_to_the_note_and_back(tmp_path: Path) -> None:
    models = installed_models_dir()
    src = tmp_path / "src"  # the replayed file lives outside the folders searched for audio
    src.mkdir()
    multi, rate = sf.read(bundled_recording(), dtype="float32")
    sf.write(src / "visit.wav", multi.mean(axis=1), rate, subtype="PCM_16")
    pcm, _ = sf.read(src / "visit.wav", dtype="float32")  # what the daemon reads

    pki = make_pki(tmp_path / "pki", devices=("dev-a",))
    broker = Broker(pki, tmp_path / "broker").start()
    clinic_dir = tmp_path / "clinic"
    (clinic_dir / "tmp").mkdir(parents=True)
    clinic_cfg = clinic_dir / "clinic.toml"
    clinic_cfg.write_text(stack.clinic_toml(pki.dir, broker.port, clinic_dir / "transcripts.db",
                                            client_id="clinic-server-system"))
    clinic = stack.clinic(clinic_cfg, clinic_dir / "clinic.log", {"TMPDIR": str(clinic_dir / "tmp")}).start()
    room = tmp_path / "room"
    (room / "tmp").mkdir(parents=True)
    port = free_port()
    extra = ('auto_lock_s = 900\nstart_consent = "required"\n' + sync_toml(pki, broker, "dev-a")
             + f"[retention]\nkeep_days = {KEEP_S / 86400}\ncheck_interval_s = 1\n")
    cfg = panel_config(room, src / "visit.wav", port, models_dir=models, extra=extra)
    try:
        clinic.wait_ready(lambda: "connected" in clinic.log.read_text(), 30, "connected to the broker")
        with panel_daemon(cfg, port, env={"TMPDIR": str(room / "tmp"), "HOME": str(room)}) as (_, base):
            run_visit(PanelClient(base), room, clinic_cfg, clinic_dir / "transcripts.db")
    finally:
        clinic.stop()
        broker.stop()
    # Everything was really stored on disk where it is searched: device, broker, clinic.
    for db in (room / "state" / "sessions.db", tmp_path / "broker" / "mosquitto.db", clinic_dir / "transcripts.db"):
        assert db.stat().st_size > 0, db
    patterns = probes(pcm)
    for searched in (room, tmp_path / "broker", clinic_dir):  # each holds its processes' TMPDIR too
        assert audio_found(searched, patterns) == []


def run_visit(panel: PanelClient, room: Path, clinic_cfg: Path, clinic_db: Path) -> None:
    panel.set_pin(PIN)
    panel.start("J.D.", TEMPLATES, consent=True)
    stream = panel.events(panel.recording_screen())  # the Recording screen and its live text stream
    assert next(stream)[0] == "status"
    stream.close()
    wait_until(lambda: panel.status()["segments"] >= 2, 60, "two lines recognised")
    panel.pause()
    assert panel.status()["state"] == "paused"
    panel.resume()
    wait_until(lambda: (panel.status().get("capture") or {}).get("message") == MSG_FINISHED
               and panel.status()["pending_s"] == 0, 180, "the whole recording replayed and recognised")
    sid = panel.stop()

    review = panel.review(sid)
    assert len(review.lines) >= 8 and review.notes == {}
    said = " ".join(line.text for line in review.lines).lower()
    assert "sore throat" in said and "rapid strep test" in said  # real recognition of the visit
    target = next(line for line in review.lines if "milligrams" in line.text)  # the patient's dose
    corrected = "Only naproxen, 400 milligrams twice a day."  # the clinician corrects the line
    panel.edit_text(sid, target.id, corrected)
    panel.send(sid)

    # The notes come back and are shown on Review, one per requested template.
    def with_all_notes() -> ReviewPage | None:
        page = panel.review(sid)
        return page if set(page.notes) == set(TEMPLATES) else None

    review = wait_for_value(with_all_notes, 120, "a note for each template on Review")
    device = open_store(str(room / "state" / "sessions.db"))
    clinic = SqliteTranscriptStore(str(clinic_db))
    try:
        reviewed = device.get_session(sid)
        assert reviewed.state in (State.SYNCED, State.QUEUED) and reviewed.revision >= 2  # the edit made revision 2
        # The clinic stored exactly the reviewed revision, line for line as Review shows it.
        assert [(r.session_id, r.revision) for r in clinic.list()] == [(sid, reviewed.revision)]
        at_clinic = clinic_show(clinic_cfg, sid, "system test: check")
        assert at_clinic["revision"] == reviewed.revision and at_clinic["templates"] == TEMPLATES
        assert [(g["id"], g["text"]) for g in at_clinic["segments"]] == [(ln.id, ln.text) for ln in review.lines]
        assert corrected in [g["text"] for g in at_clinic["segments"]]
        stored_notes = {n.template: n for n in clinic.notes(sid, current_only=True)}
        assert set(stored_notes) == set(TEMPLATES)
        for template in TEMPLATES:
            note = stored_notes[template]
            assert note.status == "ok" and note.revision == reviewed.revision
            assert review.notes[template] == note.text.strip()  # the panel shows what the clinic wrote
        assert "naproxen, 400 mg" in review.notes["SOAP"], review.notes  # written from the reviewed words

        # Retention: the device purges the visit; the clinic keeps it.
        wait_until(lambda: device.get_session(sid).state is State.PURGED, KEEP_S + 60, "purge after retention")
        panel.unlock(PIN)
        _, history = panel.get("/history")
        assert state_words("purged") in history
        purged = panel.review(sid)
        assert purged.lines == [] and purged.notes == {}
        assert clinic_show(clinic_cfg, sid, "system test: after the device's retention") == at_clinic

        # Every view of the transcript is in the audit log on its side.
        reads = [e for e in device.audit_events(sid) if e.action == "read" and e.actor == "panel"]
        views = {"live transcript": panel.visited.count("/visit"), "live stream": 1,
                 "review": sum(1 for p in panel.visited if p == f"/review/{sid}") - 1}  # the purged one reads none
        for reason, count in views.items():
            assert count > 0 and [e.detail["reason"] for e in reads].count(reason) == count, (reason, reads)
        me = getpass.getuser()
        clinic_reads = [e for e in clinic.audit_log(sid) if e.action == "read"]
        assert [e.detail for e in clinic_reads if e.actor == me] == [
            "system test: check", "system test: after the device's retention"]
        assert any(e.actor != me for e in clinic_reads)  # the note writer's read is audited too
    finally:
        device.close()
        clinic.close()

