"""Notes after ingest, end to end: a device publishes a transcript to a real Mosquitto (TLS, the
shipped ACL), the clinic server stores it, writes a note per requested template off the MQTT
thread, stores it and publishes it on the device's note topic with each sentence's evidence."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from clinic.server import ClinicServer
from clinic.store import SqliteTranscriptStore, TranscriptStore
from common import protocol
from common.mqtt import make_client
from common.protocol import Topics
from tests.broker import Broker, Pki, make_pki, running_clinic, wait_until
from tests.notes_visit import VISIT, payload
from tests.postgres import ClinicStoreTarget

TOPICS = Topics("scribe", "site1", "dev-a")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), devices=("dev-a",))


@pytest.fixture
def clinic(pki: Pki, broker: Broker, tmp_path: Path) -> Iterator[ClinicServer]:
    with running_clinic(pki, broker, tmp_path / "clinic.db", notes=True) as server:
        assert server.connected.wait(10), broker.log
        yield server


class DeviceClient:
    """The device's side of the wire, with the device's certificate: publish transcripts, read notes."""

    def __init__(self, pki: Pki, broker: Broker) -> None:
        self.notes: queue.Queue[dict[str, Any]] = queue.Queue()
        self.acks: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client = make_client("dev-a", tls=True, ca_file=str(pki.ca), cert_file=str(pki.cert("dev-a")),
                                  key_file=str(pki.key("dev-a")))
        self.client.on_message = self._on_message
        self.client.connect("localhost", broker.port)
        self.client.subscribe([(TOPICS.note, 1), (TOPICS.ack, 1)])
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        (self.notes if msg.topic == TOPICS.note else self.acks).put(json.loads(msg.payload))

    def send(self, transcript: dict[str, Any]) -> None:
        self.client.publish(TOPICS.transcript, protocol.encode(transcript), qos=1).wait_for_publish(10)

    def next_notes(self, n: int) -> list[dict[str, Any]]:
        return [protocol.validate("note", self.notes.get(timeout=30)) for _ in range(n)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def device(pki: Pki, broker: Broker) -> Iterator[DeviceClient]:
    dev = DeviceClient(pki, broker)
    yield dev
    dev.close()


def test_stored_transcript_yields_notes_with_evidence_on_the_device_note_topic(
        clinic: ClinicServer, device: DeviceClient) -> None:
    sent = payload(["SOAP", "Patient Instructions", "Discharge Letter"])
    device.send(sent)
    assert device.acks.get(timeout=30)["status"] == "stored"
    notes = {n["template"]: n for n in device.next_notes(3)}
    ids = {s["id"] for s in sent["segments"]}
    soap = notes["SOAP"]
    assert (soap["session_id"], soap["revision"], soap["status"]) == (sent["session_id"], 1, "ok")
    assert soap["generator"] == {"name": "builtin", "version": "1.0"}
    assert soap["text"].startswith("CHIEF COMPLAINT\n\nCough.") and "Denies fever and chills." in soap["text"]
    assert soap["evidence"] and all(e["segments"] and set(e["segments"]) <= ids for e in soap["evidence"])
    assert all(e["text"] in soap["text"] for e in soap["evidence"])
    assert "You take lisinopril 20 mg" in notes["Patient Instructions"]["text"]
    # A template the clinic does not know: an error note that says so, not silence.
    letter = notes["Discharge Letter"]
    assert letter["status"] == "error" and "no template named 'Discharge Letter'" in letter["text"]
    assert letter["evidence"] == []
    # Stored with generator and version.
    repo: TranscriptStore = clinic.repo
    stored = {n.template: n for n in repo.notes(sent["session_id"])}
    assert stored["SOAP"].text == soap["text"] and stored["SOAP"].generator_version == "1.0"
    assert stored["SOAP"].body["sections"][1]["sentences"][0]["evidence"]
    # The note workers' read of the transcript is audited like any other.
    reads = [(e.actor, e.action, e.revision, e.detail) for e in repo.audit_log(sent["session_id"])]
    assert reads == [("clinic-notes", "read", 1, "write notes")]


def test_new_revision_regenerates_and_supersedes(clinic: ClinicServer, device: DeviceClient) -> None:
    device.send(payload(["SOAP"]))
    [first] = device.next_notes(1)
    edited = [*VISIT[:-2], ("Clinician", "I think this is acute bronchitis. Come back in three weeks.")]
    device.send(payload(["SOAP"], revision=2, visit=edited))
    [second] = device.next_notes(1)
    assert (first["revision"], second["revision"]) == (1, 2)
    assert "in 3 weeks" in second["text"] and "in 3 weeks" not in first["text"]
    repo: TranscriptStore = clinic.repo
    old, new = repo.notes(first["session_id"])
    assert (old.revision, old.superseded_by, new.revision, new.superseded_by) == (1, new.id, 2, None)
    assert [n.revision for n in repo.notes(first["session_id"], current_only=True)] == [2]


def test_speech_free_transcript_gives_a_no_speech_note(clinic: ClinicServer, device: DeviceClient) -> None:
    device.send(payload(["SOAP"], visit=[]))
    [note] = device.next_notes(1)
    assert note["status"] == "no_speech" and note["text"].startswith("No speech recorded") and note["evidence"] == []
    wait_until(clinic.notes.idle if clinic.notes else (lambda: True), 10, "note workers idle")


def test_acks_do_not_wait_for_notes_and_a_late_old_revision_stays_superseded(
        clinic_store: ClinicStoreTarget) -> None:
    """No broker: Ingest with the note service, whose publishing is held back (as a slow generator
    would be). The acks come back at once; the notes follow when the worker is released."""
    import threading

    from clinic.config import IngestConfig
    from clinic.ingest import Ingest
    from clinic.notes.service import NoteService
    from clinic.notes.templates import TemplateRegistry

    repo = clinic_store.open()
    release = threading.Event()
    published: list[dict[str, Any]] = []

    def publish(site: str, device_id: str, message: dict[str, Any]) -> None:
        release.wait(30)
        published.append(message)

    service = NoteService(repo, TemplateRegistry(), publish, workers=1)
    ingest = Ingest("scribe", repo, IngestConfig(), on_stored=service.on_stored)
    acks = ingest.handle_batch([(TOPICS.transcript, protocol.encode(payload(["SOAP"], revision=r)))
                                for r in (1, 2)])
    assert [a["status"] for _, a in acks] == ["stored", "stored"] and published == []
    release.set()
    wait_until(lambda: len(published) == 2, 30, "notes published")
    service.close()
    sid = published[0]["session_id"]
    # Revision 1's note generated again late (e.g. a regeneration): kept, but revision 2's stays current.
    late = repo.add_note(sid, 1, "SOAP", "builtin", "1.0", "ok", "late", {})
    current = repo.notes(sid, current_only=True)
    assert [n.revision for n in current] == [2] and late.superseded_by == current[0].id
    assert len(repo.notes(sid)) == 3


def test_a_template_that_fails_on_real_data_gives_an_error_note(tmp_path: Path) -> None:
    """The body renders the one-sentence sample `templates check` uses, but not a visit with more."""
    from clinic.notes.service import NoteService
    from clinic.notes.templates import TemplateRegistry

    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "fragile.j2").write_text('+++\nname = "Fragile"\n[[sections]]\nkey = "a"\ntitle = "A"\n'
                                       'takes = ["hpi", "ros"]\n+++\n'
                                       "{% if sections[0].sentences | length > 1 %}{{ undefined_name }}{% endif %}\n")
    repo = SqliteTranscriptStore(str(tmp_path / "clinic.db"))
    sent = payload(["Fragile", "SOAP"])
    repo.store_many([sent])
    published: list[dict[str, Any]] = []
    service = NoteService(repo, TemplateRegistry(str(folder)), lambda _s, _d, m: published.append(m))
    service.on_stored(sent)
    service.close()
    by_template = {m["template"]: m for m in published}
    fragile = by_template["Fragile"]
    assert fragile["status"] == "error" and "template 'Fragile'" in fragile["text"]
    assert "'undefined_name' is undefined" in fragile["text"]
    assert by_template["SOAP"]["status"] == "ok"  # the visit's other notes are still written


def test_transcript_stored_before_a_stop_gets_its_note_at_the_next_start(
        pki: Pki, broker: Broker, device: DeviceClient, clinic_store: ClinicStoreTarget) -> None:
    """Stored and acked, then the server stopped before writing the note: the next start writes it.
    An older stored transcript that already has its note is not written again."""
    repo = clinic_store.open()
    done = payload(["SOAP"], session_id="0190aaaa-0000-7000-8000-0000000000aa")
    pending = payload(["SOAP"])
    repo.store_many([done, pending])
    repo.add_note(done["session_id"], 1, "SOAP", "builtin", "1.0", "ok", "already written", {})
    repo.close()
    with running_clinic(pki, broker, clinic_store, notes=True) as server:
        [note] = device.next_notes(1)
        assert (note["session_id"], note["status"]) == (pending["session_id"], "ok") and note["evidence"]
        wait_until(lambda: server.notes is not None and server.notes.idle(), 10, "note workers idle")
        assert server.repo.revisions_without_notes(0) == []
        assert device.notes.empty()
