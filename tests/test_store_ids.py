"""UUIDv7 ids: format, embedded time, and ordering within one millisecond."""

from __future__ import annotations

import uuid

import pytest

from appliance.store import ids
from appliance.store.ids import uuid7, uuid7_time


@pytest.fixture(autouse=True)
def fresh_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    # The generator never goes back in time within a process; start each test from scratch so
    # explicit timestamps below the wall clock are not clamped forward.
    monkeypatch.setattr(ids, "_last_ms", -1)


def test_format_version_and_variant() -> None:
    value = uuid7()
    parsed = uuid.UUID(value)
    assert str(parsed) == value
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_embeds_the_given_time() -> None:
    ms = 1_750_000_123_456
    assert uuid7_time(uuid7(ms)) == pytest.approx(ms / 1000)


def test_monotonic_within_the_same_millisecond() -> None:
    ms = 1_750_000_000_000
    made = [uuid7(ms) for _ in range(5000)]
    assert len(set(made)) == len(made)
    assert sorted(made) == made
    assert {uuid7_time(v) for v in made} == {ms / 1000}


def test_monotonic_in_a_tight_loop_on_the_wall_clock() -> None:
    made = [uuid7() for _ in range(20000)]
    assert sorted(made) == made
    assert len(set(made)) == len(made)


def test_later_milliseconds_sort_later() -> None:
    assert uuid7(1_750_000_000_001) < uuid7(1_750_000_000_002) < uuid7(1_750_000_001_000)


def test_clock_stepping_back_keeps_order() -> None:
    first = uuid7(1_760_000_000_500)
    second = uuid7(1_760_000_000_100)  # clock went back 400 ms (e.g. an NTP step)
    assert second > first


def test_counter_overflow_moves_to_next_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    ms = 1_770_000_000_000
    uuid7(ms)
    monkeypatch.setattr(ids, "_counter", ids._COUNTER_MAX)
    before = uuid7(ms - 1)  # same (clamped) millisecond, counter exhausted
    assert uuid7_time(before) == pytest.approx((ms + 1) / 1000)
    assert uuid7(ms + 1) > before


def test_rejects_non_v7_and_bad_time() -> None:
    with pytest.raises(ValueError):
        uuid7_time(str(uuid.uuid4()))
    with pytest.raises(ValueError):
        uuid7(-1)
