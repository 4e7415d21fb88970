"""Provisioning files that can be checked without running them: the Ansible tree is clean
(ansible-lint production profile, yamllint, syntax) and documented; the OS image recipe parses;
the first-boot unit verifies. (tests/test_provision_site.py runs the roles for real.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.systemd import assert_verifies, local_copy, needs_systemd_analyze

ROOT = Path(__file__).resolve().parents[1]
ANSIBLE = ROOT / "ansible"
PLAYBOOKS = ("site.yml", "rooms.yml", "clinic.yml")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=ANSIBLE, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ansible-lint") is None, reason="ansible-lint is not installed (make setup)")
def test_ansible_lint_production_profile_is_clean() -> None:
    res = _run("ansible-lint", "--profile", "production", "--nocolor")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.skipif(shutil.which("yamllint") is None, reason="yamllint is not installed (make setup)")
def test_yamllint_is_clean() -> None:
    res = _run("yamllint", "--strict", "-c", ".yamllint", ".")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible is not installed (make setup)")
@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax(playbook: str) -> None:
    res = _run("ansible-playbook", "--syntax-check", "-i", "inventory/example/hosts.yml", playbook)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_role_variable_is_documented_and_the_reference_is_current() -> None:
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "provision" / "vars_doc.py")],
                         capture_output=True, text=True, check=True)
    assert res.stdout == (ROOT / "docs" / "ansible.md").read_text(), "docs/ansible.md is stale: run `make docs`"


def test_a_variable_without_a_description_is_refused(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts" / "provision"))
    try:
        from vars_doc import role_variables
    finally:
        sys.path.pop(0)
    defaults = tmp_path / "main.yml"
    defaults.write_text("---\n# Documented.\nroom_a: 1\nroom_b: 2\n")
    with pytest.raises(SystemExit, match="room_b"):
        role_variables(defaults)


IMAGE = ROOT / "image"


@pytest.mark.parametrize("path", sorted((IMAGE / "rpi").rglob("*.yaml")), ids=lambda p: p.name)
def test_image_recipe_files_parse(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict) and doc, f"{path} is empty"
    if path.parent.name == "layer":
        # rpi-image-gen reads the layer's metadata from its comment header.
        meta = path.read_text().split("# METAEND")[0]
        for key in ("X-Env-Layer-Name: exam-scribe", "X-Env-Layer-Requires:", "X-Env-Var-project:"):
            assert key in meta, f"{path}: no {key!r} in the metadata block"
        hooks = doc["mmdebstrap"]["customize-hooks"]
        # The image runs the same role the rooms get, not a copy of it.
        assert any("rooms.yml" in h and "chroot" in h for h in hooks)
        for name in ("scribe-enrol.sh", "scribe-enrol.service"):
            assert any(name in h for h in hooks) and (IMAGE / "firstboot" / name).is_file()
    else:
        assert doc["layer"]["app"] == "exam-scribe"


def test_first_boot_script_is_valid_shell() -> None:
    res = subprocess.run(["sh", "-n", str(IMAGE / "firstboot" / "scribe-enrol.sh")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


@needs_systemd_analyze
def test_first_boot_unit_verifies(tmp_path: Path) -> None:
    # ExecStart points at an executable that exists here; the rest is verified as shipped.
    assert_verifies(local_copy(IMAGE / "firstboot" / "scribe-enrol.service", "scribe-enrol", tmp_path))


@pytest.mark.parametrize("store_url", ["", "postgresql://clinic@db.clinic.lan/clinic"])
def test_clinic_config_template_renders_a_valid_config_for_either_store(tmp_path: Path, store_url: str) -> None:
    """The role's clinic.toml for SQLite and for PostgreSQL passes the check the role runs before install."""
    import json

    import jinja2

    roles = ANSIBLE / "roles"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(roles / "clinic_server" / "templates"),
                             undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    values = {**yaml.safe_load((roles / "clinic_server" / "defaults" / "main.yml").read_text()),
              **yaml.safe_load((roles / "clinic_server" / "vars" / "main.yml").read_text())}
    values.update(clinic_broker_name="clinic.example", clinic_store_url=store_url, ansible_managed="test")
    rendered = tmp_path / "clinic.toml"
    rendered.write_text(env.get_template("clinic.toml.j2").render(**values))
    res = subprocess.run([str(Path(sys.executable).parent / "clinic"), "--config", str(rendered), "config", "show"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert ('backend = "postgresql"' in rendered.read_text()) == bool(store_url)


@pytest.mark.parametrize("tier", ["default", "pi5", "jetson"])
def test_room_config_template_renders_each_tier_as_the_catalog_defines_it(tmp_path: Path, tier: str) -> None:
    """The role's appliance.toml with the tier's values (as `models install --tier` prints them)
    passes `appliance config check`, and names the engine that runs the tier's model."""
    import json

    import jinja2

    from appliance.models.catalog import TIERS, tier_engine

    roles = ANSIBLE / "roles"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(roles / "appliance" / "templates"),
                             undefined=jinja2.StrictUndefined)
    env.filters.update(to_json=json.dumps, bool=bool)  # Ansible's filters the template uses
    values = {**yaml.safe_load((roles / "appliance" / "defaults" / "main.yml").read_text()),
              **yaml.safe_load((roles / "appliance" / "vars" / "main.yml").read_text())}
    values.update(appliance_device_id="room-1", appliance_site="clinic", appliance_broker_host="broker",
                  ansible_managed="test", appliance_state_dir=str(tmp_path / "state"))
    if tier != "default":
        t = TIERS[tier]
        values.update(appliance_models=list(t.models), appliance_asr_model=t.asr_model, appliance_asr_threads=t.threads,
                      appliance_asr_refine_model=t.refine_model,
                      appliance_asr_engine=tier_engine(t))
    rendered = tmp_path / "appliance.toml"
    rendered.write_text(env.get_template("appliance.toml.j2").render(**values))
    res = subprocess.run([str(Path(sys.executable).parent / "appliance"), "--config", str(rendered), "config", "show"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert f'engine = "{values["appliance_asr_engine"]}"' in res.stdout
    assert f'refine_model = "{values["appliance_asr_refine_model"]}"' in res.stdout
    assert set(values["appliance_models"]) >= {values["appliance_asr_model"]} | (
        {values["appliance_asr_refine_model"]} - {""})
