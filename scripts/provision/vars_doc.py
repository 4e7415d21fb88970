"""docs/ansible.md from the roles' defaults: every variable with its comment and default.

    python scripts/provision/vars_doc.py > docs/ansible.md      (make docs does this)

A variable's description is the block of `#` comment lines right above it in
roles/<role>/defaults/main.yml; a variable without one is an error, so none goes
undocumented.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "ansible" / "roles"
_VAR = re.compile(r"^([a-z][a-z0-9_]*):\s*(.*)$")


def role_variables(defaults: Path) -> list[tuple[str, str, str]]:
    """(name, default as written, description) for each top-level variable, in file order."""
    out: list[tuple[str, str, str]] = []
    comment: list[str] = []
    lines = defaults.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            comment.append(line.lstrip("#").strip())
        elif m := _VAR.match(line):
            value = m.group(2).strip()
            # A list or mapping written on the following indented lines.
            block = []
            while i + 1 < len(lines) and lines[i + 1].startswith("  "):
                i += 1
                block.append(lines[i].strip())
            if block:
                items = [b.split("  #")[0].strip().removeprefix("- ") for b in block]
                value = "[" + ", ".join(items) + "]"
            if not comment:
                raise SystemExit(f"{defaults}: variable {m.group(1)} has no description comment above it")
            out.append((m.group(1), value, " ".join(comment)))
            comment = []
        else:
            comment = []  # a blank line or '---' ends a comment block (file headers)
        i += 1
    return out


def render() -> str:
    parts = [
        "# Ansible variables",
        "",
        "Generated from `ansible/roles/*/defaults/main.yml` by `scripts/provision/vars_doc.py`",
        "(`make docs`). Set them in the inventory (`group_vars/`, `host_vars/` or beside a host).",
        "",
    ]
    for defaults in sorted(ROLES.glob("*/defaults/main.yml")):
        role = defaults.parent.parent.name
        parts += [f"## Role `{role}`", "", "| variable | default | what it sets |", "|---|---|---|"]
        for name, value, text in role_variables(defaults):
            shown = value.replace("|", "\\|") or '""'
            parts.append(f"| `{name}` | `{shown}` | {text} |")
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(render())
