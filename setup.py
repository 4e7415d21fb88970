"""Build hook: the microphone array geometries live in the top-level hardware/arrays/ (one
source of truth for clinic IT and the code) and go into the wheel as appliance/hardware/geometries/,
where appliance.hardware.arrays reads them. Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

GEOMETRIES = Path(__file__).resolve().parent / "hardware" / "arrays"


class BuildPyWithGeometries(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "appliance" / "hardware" / "geometries"
        target.mkdir(parents=True, exist_ok=True)
        for f in sorted(GEOMETRIES.glob("*.toml")):
            shutil.copyfile(f, target / f.name)


setup(cmdclass={"build_py": BuildPyWithGeometries})
