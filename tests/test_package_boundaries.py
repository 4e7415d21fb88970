"""The device and the clinic server share only common/: the clinic never imports appliance.*, the
device never imports clinic.*, and common/ imports neither (so it can ship with either side)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"clinic": {"appliance"}, "appliance": {"clinic"}, "common": {"appliance", "clinic"}}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports, lazy imports inside functions included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_on_its_side(package: str) -> None:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert len(modules) > 5, f"no modules found under {package}/"
    crossings = [f"{m.relative_to(ROOT)} imports {bad}" for m in modules
                 for bad in sorted(imported_packages(m) & FORBIDDEN[package])]
    assert crossings == []


def test_the_walker_sees_lazy_and_dotted_imports(tmp_path: Path) -> None:
    """Positive control: the forms the code uses are all found."""
    module = tmp_path / "m.py"
    module.write_text("import os.path\nfrom appliance.sync import payload\n\n"
                      "def f():\n    from clinic.store import open_repository\n    import common.mqtt\n")
    assert imported_packages(module) == {"os", "appliance", "clinic", "common"}
