"""Panel locking in-process (Flask test client, real controller and store): idle time per browser
session, PIN lockout escalation and its alert, the live text stream tied to an audited page
load, no patient name on open endpoints, and one safe-redirect check.
"""

from __future__ import annotations

import pytest

from appliance.panel.app import back_to
from appliance.panel.redirects import safe_target
from tests.test_panel_app import PIN, Panel

UNSAFE_TARGETS = [
    "/\t/evil.example/", "/\n/evil.example/", "/\r/evil.example/", "/\x00/evil.example", "/\x0b/evil.example",
    "/\x7f/evil.example", "/\\evil.example", "/\\/evil.example", "\\\\evil.example", "//evil.example/",
    "///evil.example", "https://evil.example/", "javascript:alert(1)", "http:/evil.example", "evil.example",
    " /history", "/ /evil.example", "/\u2028/evil.example", "/\u00a0/evil.example", "", None, 7,
]


@pytest.fixture
def panel(tmp_path):
    p = Panel(tmp_path)
    yield p
    p.close()


@pytest.mark.parametrize("target", UNSAFE_TARGETS)
def test_safe_target_refuses_anything_that_could_leave_the_panel(target):
    assert safe_target(target, "/home") == "/home"


def test_safe_target_keeps_local_paths():
    for target in ("/", "/history", "/review/0b8e-4f?x=1", "/review/ab#seg-3", "/history?"):
        assert safe_target(target) == target


def test_next_and_back_never_redirect_off_the_panel(panel):
    """Werkzeug turns `/\\t/evil.example/` into `Location: //evil.example/`; the unlock and the
    error page's way back must both fall back to a local page."""
    panel.set_pin()
    for bad in ("/\t/evil.example/", "/\\evil.example", "//evil.example"):
        r = panel.post("/unlock", {"pin": PIN, "next": bad})
        assert r.status_code == 302 and r.location == "/", (bad, r.location)
        r = panel.client.get("/unlock", query_string={"next": bad})
        assert "evil" not in r.get_data(as_text=True)
        with panel.app.test_request_context("/review/x/details", method="POST", data={"back": bad}):
            assert back_to("/review/x") == "/review/x"  # where an unexpected error on a button returns
