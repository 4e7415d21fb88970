"""The Ansible tree is clean (ansible-lint production profile, yamllint, syntax) and documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ANSIBLE = ROOT / "ansible"
PLAYBOOKS = ("site.yml", "rooms.yml", "clinic.yml")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=ANSIBLE, capture_output=True, text=True, timeout=300)


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
