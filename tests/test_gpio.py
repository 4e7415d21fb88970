"""GPIO button and recording LED against gpiozero's MockFactory."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("gpiozero")
from gpiozero.pins.mock import MockFactory

from appliance.config.schema import GpioConfig
from appliance.hardware.gpio import GpioControls, open_gpio

# The schema's minimums: fast tests, still realistic.
CFG = GpioConfig(enabled=True, button_pin=17, led_pin=27, long_press_s=0.3, blink_s=0.1)


def wait_for(cond: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


@pytest.fixture()
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.close()


@pytest.fixture()
def controls(factory: MockFactory) -> Iterator[tuple[GpioControls, list[str]]]:
    events: list[str] = []
    c = GpioControls(
        CFG, lambda: events.append("toggle"), lambda: events.append("pause"), pin_factory=factory
    )
    yield c, events
    c.close()


def press(factory: MockFactory, seconds: float) -> None:
    pin = factory.pin(CFG.button_pin)
    pin.drive_low()  # wired to ground, pulled up: low is pressed
    time.sleep(seconds)
    pin.drive_high()


def test_short_press_toggles_on_release(
    factory: MockFactory, controls: tuple[GpioControls, list[str]]
) -> None:
    _, events = controls
    pin = factory.pin(CFG.button_pin)
    assert pin.state == 1  # internal pull-up
    pin.drive_low()
    time.sleep(0.1)
    assert events == []  # nothing until release: it might become a long press
    pin.drive_high()
    assert wait_for(lambda: events == ["toggle"])
    time.sleep(0.1)
    press(factory, 0.08)
    assert wait_for(lambda: events == ["toggle", "toggle"])


@pytest.mark.slow
def test_long_press_pauses_once_at_hold_time(
    factory: MockFactory, controls: tuple[GpioControls, list[str]]
) -> None:
    _, events = controls
    pin = factory.pin(CFG.button_pin)
    pin.drive_low()
    # Fires while still held...
    assert wait_for(lambda: events == ["pause"], timeout=CFG.long_press_s + 1.0)
    time.sleep(CFG.long_press_s * 2)  # ...only once, however long the hold...
    assert events == ["pause"]
    pin.drive_high()
    time.sleep(0.15)
    assert events == ["pause"]  # ...and the release is not a start/stop.
    press(factory, 0.08)
    assert wait_for(lambda: events == ["pause", "toggle"])


def test_handler_exception_does_not_break_button(factory: MockFactory) -> None:
    calls: list[str] = []

    def boom() -> None:
        calls.append("boom")
        raise RuntimeError("handler failed")

    c = GpioControls(CFG, boom, lambda: None, pin_factory=factory)
    try:
        press(factory, 0.05)
        time.sleep(0.1)
        press(factory, 0.05)
        assert wait_for(lambda: calls == ["boom", "boom"])
    finally:
        c.close()


def _transitions(factory: MockFactory) -> list[bool]:
    """The LED pin's successive levels, with repeats collapsed."""
    out: list[bool] = []
    for s in factory.pin(CFG.led_pin).states:
        level = bool(s.state)
        if not out or out[-1] != level:
            out.append(level)
    return out


@pytest.mark.slow
def test_led_states(factory: MockFactory, controls: tuple[GpioControls, list[str]]) -> None:
    c, _ = controls
    led = factory.pin(CFG.led_pin)
    assert led.state == 0
    c.set_led("recording")
    assert led.state == 1
    c.set_led("idle")
    assert led.state == 0

    led.clear_states()
    c.set_led("paused")
    time.sleep(CFG.blink_s * 6)
    seen = _transitions(factory)
    assert seen[:5] == [False, True, False, True, False], seen  # blinking, not stuck
    c.set_led("paused")  # a repeated status update does not restart the cycle
    assert c.led_state == "paused"

    c.set_led("recording")
    time.sleep(CFG.blink_s * 3)
    assert led.state == 1  # the blink thread is gone, the LED stays on
    c.set_led("stopped")
    time.sleep(CFG.blink_s * 2)
    assert led.state == 0


def test_open_gpio(factory: MockFactory) -> None:
    assert open_gpio(GpioConfig(enabled=False), lambda: None, lambda: None, factory) is None
    c = open_gpio(CFG, lambda: None, lambda: None, factory)
    assert isinstance(c, GpioControls)
    c.close()
    # Unusable pins are logged, not raised: the panel still controls recording.
    bad = GpioConfig(enabled=True, button_pin=17, led_pin=17)
    assert open_gpio(bad, lambda: None, lambda: None, factory) is None
