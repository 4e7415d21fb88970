"""Config: typed parsing, precise errors, generated docs kept current."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config import ApplianceConfig, load_config, parse_config
from appliance.config.docs import render_markdown, render_toml
from clinic.config import ClinicConfig, describe, load_clinic_config
from common.config import ConfigError
from common.config.render import toml_value

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_when_default_file_absent(monkeypatch):
    monkeypatch.delenv("APPLIANCE_CONFIG", raising=False)
    monkeypatch.setattr("appliance.config.loader.DEFAULT_PATH", "/nonexistent/appliance.toml")
    assert load_config() == ApplianceConfig()


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.toml"))


def test_env_var_selects_file(tmp_path, monkeypatch):
    f = tmp_path / "a.toml"
    f.write_text('[device]\nroom = "exam-7"\n')
    monkeypatch.setenv("APPLIANCE_CONFIG", str(f))
    assert load_config().device.room == "exam-7"


def test_values_are_typed_and_frozen(tmp_path):
    f = tmp_path / "a.toml"
    f.write_text("[capture]\nasr_channels = [1, 2]\nbuffer_seconds = 10\n")
    cfg = load_config(str(f))
    assert cfg.capture.asr_channels == (1, 2)
    assert isinstance(cfg.capture.buffer_seconds, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.capture.device = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("toml", "key", "words"),
    [
        ("[capture]\nblock_ms = \"fast\"\n", "capture.block_ms", "expected integer"),
        ("[capture]\nblock_ms = 5\n", "capture.block_ms", "at least 8"),
        ("[capture]\nsource = \"usb\"\n", "capture.source", "one of"),
        ("[capture]\nrealtime = 1\n", "capture.realtime", "expected boolean"),
        ("[capture]\nasr_channels = [0, \"a\"]\n", "capture.asr_channels[1]", "expected integer"),
        ("[capture]\nsampel_rate = 48000\n", "capture.sampel_rate", "unknown key"),
        ("[nosuch]\nx = 1\n", "nosuch", "unknown key"),
        ("device = 3\n", "device", "expected a table"),
    ],
)
def test_bad_values_name_key_value_and_file(tmp_path, toml, key, words):
    f = tmp_path / "bad.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_config(str(f))
    msg = str(err.value)
    assert err.value.key == key
    assert str(f) in msg and key in msg and words in msg


def _float_keys(root: type) -> list[tuple[str, str]]:
    keys = []
    for top in dataclasses.fields(root):
        cls = typing.get_type_hints(root)[top.name]
        keys += [(top.name, f.name) for f in dataclasses.fields(cls) if typing.get_type_hints(cls)[f.name] is float]
    return keys


@pytest.mark.parametrize("literal", ["nan", "inf", "-inf", "+nan"])
def test_non_finite_numbers_refused_in_every_float_key(tmp_path, literal):
    """nan compares false with every bound, so `pin_lockout_s = nan` used to remove the PIN lockout."""
    for root, load in ((ApplianceConfig, load_config), (ClinicConfig, load_clinic_config)):
        keys = _float_keys(root)
        assert keys
        for table, name in keys:
            f = tmp_path / f"{table}.{name}.toml"
            f.write_text(f"[{table}]\n{name} = {literal}\n")
            with pytest.raises(ConfigError, match="finite number") as err:
                load(str(f))
            assert err.value.key == f"{table}.{name}" and str(f) in str(err.value)


def test_broken_toml_names_file(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("[capture\nsource=")
    with pytest.raises(ConfigError, match="not valid TOML") as err:
        load_config(str(f))
    assert str(f) in str(err.value)


def test_config_check_cli_exit_status(tmp_path, capsys):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text('[device]\nid = "room-12"\n')
    bad.write_text("[vad]\nmin_silence_ms = 20\n")
    assert main(["config", "check", str(good)]) == 0
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "vad.min_silence_ms" in err and "20" in err and str(bad) in err


def test_every_field_has_a_description():
    for top in dataclasses.fields(ApplianceConfig):
        assert top.metadata.get("description"), top.name
        for f in dataclasses.fields(top.default_factory()):  # type: ignore[misc]
            assert len(f.metadata.get("description", "")) > 10, f"{top.name}.{f.name}"


def test_docs_config_md_is_current():
    assert (ROOT / "docs" / "config.md").read_text() == render_markdown(), (
        "docs/config.md is stale: run `appliance config docs > docs/config.md`"
    )


def test_rendered_toml_round_trips():
    import tomllib

    cfg = parse_config({"device": {"room": "exam-3"}, "capture": {"asr_channels": [0]}})
    assert parse_config(tomllib.loads(render_toml(cfg))) == cfg


def test_clinic_config_show_is_a_config_file_of_the_defaults(tmp_path: Path) -> None:
    """`clinic config show` comes from the device's renderer (common.config.render): a file the
    clinic loads back to its defaults, strings with quotes and backslashes escaped."""
    import tomllib

    shown = tmp_path / "clinic.toml"
    shown.write_text(describe())
    assert load_clinic_config(str(shown)) == ClinicConfig()
    tricky = 'C:\\new "folder"\té'
    assert tomllib.loads(f"key = {toml_value(tricky)}") == {"key": tricky}


def test_cli_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "appliance", "--help"], capture_output=True, text=True, check=True)
    for word in ("run", "config", "ctl", "sessions", "demo", "devices"):
        assert word in out.stdout
