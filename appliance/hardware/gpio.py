"""Optional physical controls: a momentary push button and the recording LED (gpiozero).

Button (BCM pin to ground, internal pull-up): a short press toggles start/stop, acted on at
release so a long press is never mistaken for one; holding for `long_press_s` toggles
pause/resume once, the moment the hold time is reached (the clinician sees the LED change
while still holding), and the release that follows does nothing.

LED: on while recording, blinking while paused, off otherwise, so a patient can always see
whether the room is listening.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from appliance.config.schema import GpioConfig

log = logging.getLogger(__name__)

# Contact bounce of a cheap tactile switch settles well within this.
DEFAULT_BOUNCE_S = 0.03


class GpioControls:
    """The push button and recording LED described by `GpioConfig`."""

    def __init__(
        self,
        cfg: GpioConfig,
        on_toggle: Callable[[], object],
        on_pause_toggle: Callable[[], object],
        pin_factory: Any = None,
        *,
        bounce_s: float | None = DEFAULT_BOUNCE_S,
    ) -> None:
        # Imported here so that machines without gpiozero can import this module.
        from gpiozero import LED, Button

        self._cfg = cfg
        self._on_toggle = on_toggle
        self._on_pause_toggle = on_pause_toggle
        self._lock = threading.Lock()
        self._held = False
        self._led_state: str | None = None
        self._led = LED(cfg.led_pin, initial_value=False, pin_factory=pin_factory)
        try:
            self._button = Button(
                cfg.button_pin, pull_up=True, bounce_time=bounce_s, hold_time=cfg.long_press_s,
                hold_repeat=False, pin_factory=pin_factory,
            )
        except Exception:
            self._led.close()
            raise
        self._button.when_pressed = self._pressed
        self._button.when_held = self._held_reached
        self._button.when_released = self._released

    # -- button (callbacks run on gpiozero's threads) -------------------------------------------

    def _pressed(self) -> None:
        with self._lock:
            self._held = False

    def _held_reached(self) -> None:
        with self._lock:
            if self._held:
                return
            self._held = True
        self._call(self._on_pause_toggle, "pause toggle")

    def _released(self) -> None:
        with self._lock:
            was_held, self._held = self._held, False
        if not was_held:
            self._call(self._on_toggle, "start/stop toggle")

    @staticmethod
    def _call(callback: Callable[[], object], what: str) -> None:
        # An exception would kill gpiozero's event thread and with it the button.
        try:
            callback()
        except Exception:
            log.exception("GPIO button %s handler failed", what)

    # -- LED --------------------------------------------------------------------------------------

    def set_led(self, state: str) -> None:
        """"recording": on; "paused": blinking `blink_s` on/off; anything else: off.

        Repeating the current state is a no-op, so the periodic status update does not
        restart the blink cycle.
        """
        state = state if state in ("recording", "paused") else "off"
        with self._lock:
            if state == self._led_state:
                return
            self._led_state = state
            if state == "recording":
                self._led.on()
            elif state == "paused":
                self._led.blink(on_time=self._cfg.blink_s, off_time=self._cfg.blink_s, background=True)
            else:
                self._led.off()

    @property
    def led_state(self) -> str | None:
        return self._led_state

    def close(self) -> None:
        with self._lock:
            self._led_state = None
        self._button.close()
        self._led.close()  # also stops a blink thread and releases the pin


def open_gpio(
    cfg: GpioConfig,
    on_toggle: Callable[[], object],
    on_pause_toggle: Callable[[], object],
    pin_factory: Any = None,
) -> GpioControls | None:
    """GpioControls when enabled and available; None (logged) otherwise.

    Missing GPIO must not stop the daemon: the panel still starts, pauses and stops recording.
    """
    if not cfg.enabled:
        return None
    try:
        return GpioControls(cfg, on_toggle, on_pause_toggle, pin_factory)
    except Exception:
        log.exception("GPIO button/LED unavailable (button pin %d, LED pin %d)", cfg.button_pin, cfg.led_pin)
        return None
