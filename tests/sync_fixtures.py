"""Fixtures for the tests on a real Mosquitto, loaded for every test file by conftest's
`pytest_plugins`: the PKI once per test module, a broker and a connected clinic server per test.
A module that needs another kind (fewer devices, a broker for the whole module, notes on) defines
a fixture of the same name, which takes precedence in that module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clinic.server import ClinicServer
from tests.broker import Broker, Pki, make_pki, running_clinic


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(pki: Pki, tmp_path: Path) -> Iterator[Broker]:
    with Broker(pki, tmp_path / "broker") as b:
        yield b


@pytest.fixture
def clinic(pki: Pki, broker: Broker, tmp_path: Path) -> Iterator[ClinicServer]:
    with running_clinic(pki, broker, tmp_path / "clinic.db") as server:
        assert server.connected.wait(10), broker.log
        yield server
