"""Cross-field config rules: `config check` refuses what start-up would refuse, naming key and file,
and the daemon's panel, sync and start-up use the very same rules (appliance.config.rules)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config import load_config, parse_config, rules
from appliance.config.schema import SyncConfig
from appliance.daemon.alerts import Alerts
from appliance.panel.server import PanelConfigError, check_exposure
from appliance.store import open_store
from appliance.sync import build_sync
from appliance.sync.service import DisabledSync, SyncService
from tests.broker import CONF, make_pki
from tests.daemon import DaemonProcess, write_config

# A sync table that passes every rule, so a case changes one thing only.
SYNC = '[sync]\nenabled = true\ntls = false\nbroker_host = "localhost"\n'
LAN = '[panel]\nhost = "0.0.0.0"\nlan = true\ntls_cert = "{cert}"\ntls_key = "{key}"\n'

# (case, TOML, key named, part of the daemon the problem stops)
REFUSED = [
    ("panel on all addresses without lan", '[panel]\nhost = "0.0.0.0"\n', "panel.host", "panel"),
    ("lan without TLS files", '[panel]\nhost = "0.0.0.0"\nlan = true\n', "panel.tls_cert", "panel"),
    ("lan with missing TLS files", LAN.replace("{cert}", "/nonexistent/c.pem"), "panel.tls_cert", "panel"),
    ("empty panel host", '[panel]\nhost = ""\n', "panel.host", "panel"),
    ("invalid panel host", '[panel]\nhost = "exam room"\n', "panel.host", "panel"),
    ("panel host as URL", '[panel]\nhost = "http://127.0.0.1"\n', "panel.host", "panel"),
    ("world-readable panel key in lan mode", LAN, "panel.tls_key", "panel"),
    ("no template at all", "[panel]\ntemplates = []\n", "panel.templates", "daemon"),
    ("device id with a slash", '[device]\nid = "room/7"\n' + SYNC, "device.id", "sync"),
    ("device id with #", '[device]\nid = "room#7"\n' + SYNC, "device.id", "sync"),
    ("device id with +", '[device]\nid = "room+7"\n' + SYNC, "device.id", "sync"),
    ("device id with a space", '[device]\nid = "room 7"\n' + SYNC, "device.id", "sync"),
    ("empty device id", '[device]\nid = ""\n' + SYNC, "device.id", "sync"),
    ("site with a slash", '[device]\nsite = "north/clinic"\n' + SYNC, "device.site", "sync"),
    ("topic prefix with a wildcard", SYNC + 'topic_prefix = "scribe/#"\n', "sync.topic_prefix", "sync"),
    ("broker given as URL", SYNC.replace('"localhost"', '"mqtts://clinic.example:8883"'), "sync.broker_host",
     "sync"),
    ("empty broker host", SYNC.replace('"localhost"', '""'), "sync.broker_host", "sync"),
    ("chunk as big as the shipped broker's packet limit", SYNC + "chunk_bytes = 262144\n", "sync.chunk_bytes",
     "sync"),
    ("chunk above a declared packet limit", SYNC + "chunk_bytes = 100000\nbroker_max_packet_bytes = 65536\n",
     "sync.chunk_bytes", "sync"),
    ("world-readable MQTT client key", SYNC.replace("tls = false", 'tls = true\nkey_file = "{key}"'),
     "sync.key_file", "sync"),
]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"), devices=())


def _config(tmp_path: Path, pki, toml: str, key_mode: int = 0o644) -> Path:
    """Write ``toml`` with {cert}/{key} pointing at a real certificate and a key of ``key_mode``."""
    key = tmp_path / "server.key"
    key.write_bytes(pki.key("server").read_bytes())
    key.chmod(key_mode)
    f = tmp_path / "appliance.toml"
    f.write_text(toml.replace("{cert}", str(pki.cert("server"))).replace("{key}", str(key)))
    return f


def _add_sync(cfg, store):
    """What the daemon does at start-up: build_sync with the store and the alerts (not started)."""
    return build_sync(cfg, store, Alerts())[0]


@pytest.mark.parametrize(("toml", "key", "part"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_config_check_refuses_naming_key_and_file(tmp_path, capsys, pki, toml, key, part):
    f = _config(tmp_path, pki, toml)
    assert main(["config", "check", str(f)]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"config error: {re.escape(str(f))}: {re.escape(key)}: ", err), err
    assert rules.EFFECT[part] in err


@pytest.mark.parametrize(("toml", "key", "part"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_start_up_enforces_the_same_rules(tmp_path, pki, toml, key, part):
    """The panel and sync refuse through the rule functions themselves, so they cannot drift."""
    cfg = load_config(str(_config(tmp_path, pki, toml)))
    if part == "panel":
        with pytest.raises(PanelConfigError, match=re.escape(key)):
            check_exposure(cfg)
    elif part == "sync":
        store = open_store(str(tmp_path / "sessions.db"))
        try:
            service = _add_sync(cfg, store)
            assert isinstance(service, DisabledSync)
            assert key in service.status()["last_error"]
        finally:
            store.close()
    else:
        assert [p.key for p in rules.errors(rules.check(cfg, "daemon"))] == [key]


def test_valid_lan_and_sync_configs_pass(tmp_path, capsys, pki):
    toml = LAN + SYNC.replace("tls = false", 'tls = true\nca_file = "{cert}"\ncert_file = "{cert}"\n'
                              'key_file = "{key}"') + "chunk_bytes = 262000\n"
    f = _config(tmp_path, pki, toml, key_mode=0o600)
    assert main(["config", "check", str(f)]) == 0, capsys.readouterr().err
    cfg = load_config(str(f))
    assert check_exposure(cfg) is not None  # the TLS context LAN mode serves with
    store = open_store(str(tmp_path / "sessions.db"))
    try:
        assert isinstance(_add_sync(cfg, store), SyncService)
    finally:
        store.close()


def test_group_readable_key_is_a_warning(tmp_path, capsys, pki):
    f = _config(tmp_path, pki, LAN, key_mode=0o640)
    assert main(["config", "check", str(f)]) == 0
    err = capsys.readouterr().err
    assert f"config warning: {f}: panel.tls_key: " in err and "readable by its group" in err


def test_unused_key_files_and_a_disabled_panel_are_not_checked(tmp_path, capsys, pki):
    """The key of a mode that is off is not read: no refusal for what the daemon will not use."""
    f = _config(tmp_path, pki, '[panel]\nenabled = false\nhost = "0.0.0.0"\ntls_key = "{key}"\n'
                '[sync]\nkey_file = "{key}"\n')
    assert main(["config", "check", str(f)]) == 0, capsys.readouterr().err


def test_broker_packet_limit_default_is_the_shipped_mosquitto_conf():
    shipped = re.search(r"^max_packet_size (\d+)$", CONF.read_text(), re.M)
    assert shipped and SyncConfig().broker_max_packet_bytes == int(shipped.group(1))
    assert rules.check(parse_config({"sync": {"enabled": True, "tls": False}})) == []  # default chunk_bytes fits


@pytest.mark.slow
def test_daemon_refuses_to_start_naming_key_and_file(tmp_path):
    f = tmp_path / "appliance.toml"
    f.write_text(f'[paths]\nstate_dir = "{tmp_path}"\n[daemon]\ncontrol_socket = "{tmp_path / "ctl.sock"}"\n'
                 '[panel]\nenabled = false\ntemplates = []\n')
    out = subprocess.run([sys.executable, "-m", "appliance", "run", "--config", str(f)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert f"config error: {f}: panel.templates: " in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_daemon_with_an_invalid_device_id_records_and_says_why_sync_is_off(tmp_path):
    """It used to exit with a traceback (topic level with '/'); now sync stays off, by name."""
    audio = tmp_path / "none.wav"
    config = write_config(tmp_path, audio, extra='[device]\nid = "room/7"\n' + SYNC)
    with DaemonProcess(config) as daemon:
        sync = daemon.status()["sync"]
        assert sync["enabled"] is False and "device.id" in sync["last_error"]
    assert "transcript sync NOT started: device.id" in daemon.log.read_text()


def test_key_file_mode_is_read_from_the_file(tmp_path):
    key = tmp_path / "k.pem"
    key.write_text("x")
    for mode, expected in ((0o600, None), (0o640, True), (0o604, False)):
        os.chmod(key, mode)
        problem = rules.key_file_problem("sync", "sync.key_file", str(key), "sync over TLS")
        assert (problem.warning if problem else None) is expected


@pytest.mark.slow
def test_packet_size_rule_matches_a_real_mosquitto(tmp_path, pki):
    """The largest chunk the rule lets through is accepted by Mosquitto with that max_packet_size, and
    3 bytes more are refused: the rule's arithmetic is checked on the real broker, not guessed."""
    from common.mqtt import make_client
    from common.protocol import Topics
    from tests.broker import Broker

    limit = 4096
    pki.issue("device", "dev-a")
    topic = Topics("scribe", "site1", "dev-a").transcript
    largest = max(c for c in range(limit) if rules.mqtt_publish_size(topic, c) <= limit)

    def published(size: int) -> bool:
        client = make_client("dev-a", tls=True, ca_file=str(pki.ca), cert_file=str(pki.cert("dev-a")),
                             key_file=str(pki.key("dev-a")))
        client.connect("localhost", broker.port)
        client.loop_start()
        try:
            info = client.publish(topic, b"x" * size, qos=1)
            info.wait_for_publish(5)
            return info.is_published()
        finally:
            client.disconnect()
            client.loop_stop()

    with Broker(pki, tmp_path / "broker", max_packet=limit) as broker:
        assert published(largest)
        # Mosquitto counts the fixed header's first byte but not its 1-4 length bytes (2 here), which
        # the MQTT definition of packet size includes: the rule keeps to the definition.
        assert not published(largest + 3)
