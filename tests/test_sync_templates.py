"""The clinic announces the note templates it writes (retained `scribe/templates`) on a real
Mosquitto with the shipped TLS config and generated ACL: a device that connects later receives it,
keeps it, and its panel's Start screen offers exactly those names; before any announcement the
panel offers its config's list. A malformed announcement is dropped and the kept list stays."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from appliance.sync.announced import FILE, load_announced
from clinic.notes.templates import TemplateRegistry
from clinic.server import ClinicServer
from common import protocol
from tests.broker import Broker, Device, Pki, Raw, clinic_config, wait_until
from tests.test_panel_app import Panel

pytestmark = pytest.mark.slow

DERM = ('+++\nname = "Dermatology Visit"\n[[sections]]\nkey = "a"\ntitle = "Findings"\ntakes = ["hpi", "exam"]\n'
        "+++\n")


def offered(panel: Panel) -> list[str]:
    import re

    html = panel.get("/").get_data(as_text=True)
    return [t.replace("&amp;", "&") for t in re.findall(r'name="template" value="([^"]*)"', html)]


def test_the_panel_offers_its_config_until_the_clinic_announces(tmp_path: Path) -> None:
    panel = Panel(tmp_path, panel={"custom_templates": ["Sports Medicine"]})
    try:
        assert offered(panel) == ["SOAP", "H&P", "Progress Note", "Patient Instructions", "Sports Medicine"]
    finally:
        panel.close()


def test_clinic_announces_its_templates_a_later_device_keeps_them_and_the_panel_offers_them(
        pki: Pki, broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "clinic-templates"
    folder.mkdir()
    (folder / "derm.j2").write_text(DERM)
    cfg = clinic_config(pki, broker, tmp_path / "clinic.db", notes=True)
    cfg = type(cfg)(mqtt=cfg.mqtt, store=cfg.store, ingest=cfg.ingest,
                    notes=type(cfg.notes)(enabled=True, templates_dir=str(folder)))
    expected = TemplateRegistry(str(folder)).names()
    assert "Dermatology Visit" in expected and "SOAP" in expected
    server = ClinicServer(cfg).start()
    state = tmp_path / "state"
    try:
        wait_until(server.connected.is_set, 10, "clinic connected")
        # The device connects after the announcement: the broker's retained copy reaches it.
        with Device(pki, broker, state):
            wait_until(lambda: (state / FILE).exists(), 20, "the device kept the clinic's template list")
            assert load_announced(str(state / FILE)) == expected
    finally:
        server.stop()

    panel = Panel(tmp_path, panel={"custom_templates": ["Sports Medicine"]})  # state_dir = tmp_path/"state"
    try:
        assert offered(panel) == expected  # the clinic's list, not the config's "Sports Medicine"
        r = panel.post("/start", {"name": "AB", "template": "Dermatology Visit"})
        assert r.location == "/visit"
        assert panel.controller.session.templates == ("Dermatology Visit",)
    finally:
        panel.close()

    # Only the clinic server may announce; a malformed announcement (even from it) is dropped.
    with Device(pki, broker, state):
        device_writer = Raw(broker, pki, "dev-b")  # the ACL lets devices read the topic, not write it
        device_writer.publish(protocol.templates_topic("scribe"), protocol.encode(
            {"schema": "scribe.templates/1", "templates": ["Forged"], "ts": 1.0}))
        bad = Raw(broker, pki, "clinic-server")
        caplog.set_level(logging.WARNING, logger="appliance.sync")
        bad.publish(protocol.templates_topic("scribe"), b'{"schema": "scribe.templates/1", "templates": [], "ts": 1}')
        wait_until(lambda: "dropped message on scribe/templates" in caplog.text, 10, "bad announcement dropped")
        assert load_announced(str(state / FILE)) == expected
        device_writer.close()
        bad.close()
