"""The room touch panel: a small Flask app served by the daemon to the kiosk browser.

Screens: Start, Recording, Review, History (PIN), Settings (PIN). Live updates come from the
session controller's events over Server-Sent Events, so the physical button and the panel
can never disagree. See docs/panel.md.
"""

from appliance.panel.app import create_app
from appliance.panel.server import build_panel

__all__ = ["build_panel", "create_app"]
