"""Panel locking in-process (Flask test client, real controller and store): idle time per browser
session, PIN lockout escalation and its alert, the live text stream tied to an audited page
load, no patient name on open endpoints, and one safe-redirect check.
"""

from __future__ import annotations

import pytest

from appliance.panel.origin import back_to
from common.websafety import safe_target
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


@pytest.mark.slow
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


def test_idle_time_is_per_browser_session(panel):
    """Another tab, a LAN browser or a script touching the panel does not keep the kiosk unlocked."""
    panel.set_pin()  # the kiosk (panel.client) is unlocked
    other = panel.app.test_client()
    assert other.post("/unlock", data={"csrf_token": csrf_of(other), "pin": PIN}).location == "/"
    assert panel.client.get("/history").status_code == 200
    for _ in range(4):  # 40 s: the other browser keeps busy, the kiosk is left alone (auto_lock_s = 30)
        panel.clock.tick(10)
        assert other.get("/history").status_code == 200
    assert panel.client.get("/status").get_json()["locked"] is True  # the status tick touches nothing
    r = panel.client.get("/history")
    assert r.status_code == 302 and r.location.startswith("/unlock")
    assert other.get("/history").status_code == 200  # the busy one is still unlocked
    assert other.get("/status").get_json()["locked"] is False
    assert [e.action for e in panel.store.audit_events()].count("panel:auto-lock") == 1


@pytest.mark.slow
def test_the_visit_just_stopped_is_not_kept_open_by_another_browser(panel):
    sid = panel.visit()  # stopped on the kiosk, which opens its Review at once
    assert panel.client.get(f"/review/{sid}").status_code == 200
    script = panel.app.test_client()
    for _ in range(4):
        panel.clock.tick(10)
        script.get("/")
    r = panel.app.test_client().get(f"/review/{sid}")  # 40 s after the Stop: needs the PIN
    assert r.status_code == 302 and r.location.startswith("/unlock")
    r = panel.client.get(f"/review/{sid}")  # the kiosk was idle as long: needs it too
    assert r.status_code == 302 and r.location.startswith("/unlock")


@pytest.mark.slow
def test_a_browser_reviewing_the_visit_just_stopped_keeps_it_while_in_use(panel):
    sid = panel.visit()
    for _ in range(4):
        panel.clock.tick(20)
        assert panel.client.get(f"/review/{sid}").status_code == 200
    panel.clock.tick(31)
    assert panel.client.get(f"/review/{sid}").status_code == 302


def csrf_of(client) -> str:
    import re

    page = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def read_stream(client, url: str, until: str, act) -> str:
    """The event stream at ``url`` from its start until a frame of event ``until`` after ``act()``."""
    resp = client.get(url, buffered=False)
    frames = iter(resp.response)
    text = next(frames).decode() + next(frames).decode()  # retry + the first status
    act()
    for _ in range(10):
        frame = next(frames).decode()
        text += frame
        if f"event: {until}" in frame:
            break
    resp.close()
    return text


def test_live_text_needs_the_pass_of_an_audited_page_load_and_names_stay_off_open_endpoints(panel):
    import re

    hub = panel.app.extensions["panel"].hub
    assert panel.post("/start", {"name": "JANE QUINCY", "template": "SOAP"}).location == "/visit"
    status = panel.client.get("/status").get_json()
    sid = status["session_id"]
    assert "name" not in status and "JANE" not in str(status)

    def say():
        hub.publish("segment", {"session_id": sid, "id": "x1", "start": 0, "end": 1, "speaker": "S1",
                                "text": "secret words"})

    def reads() -> list:
        return [e.detail for e in panel.store.audit_events(sid) if e.action == "read"]

    # The visit id (which /status gives anyone) no longer opens the text.
    for url in (f"/events?text={sid}", "/events", "/events?text=forged"):
        body = read_stream(panel.app.test_client(), url, "segment", say)
        assert "event: segment" in body and "secret words" not in body and "JANE" not in body
    assert reads() == []
    # The Recording screen's load is audited and hands its page a pass; each stream start is audited.
    page = panel.client.get("/visit").get_data(as_text=True)
    token = re.search(r'data-stream="([^"]+)"', page).group(1)
    assert token != sid and "JANE QUINCY" in page  # the audited page may show the name
    for _ in range(2):  # a reconnect of the same page keeps working
        body = read_stream(panel.client, f"/events?text={token}", "segment", say)
        assert "secret words" in body
    assert [r["reason"] for r in reads()] == ["live transcript", "live stream", "live stream"]
    # State events carry no name either (Pause from another client).
    body = read_stream(panel.app.test_client(), f"/events?text={token}", "state",
                       lambda: panel.post("/visit/pause"))
    assert '"state":"paused"' in body.replace(" ", "") and "JANE" not in body
    # Once the visit is over its passes open nothing.
    panel.post("/visit/stop", {"confirm": "yes"})
    panel.post("/start", {"name": "NEXT"})
    nxt = panel.client.get("/status").get_json()["session_id"]
    body = read_stream(panel.app.test_client(), f"/events?text={token}", "segment",
                       lambda: hub.publish("segment", {"session_id": nxt, "id": "y", "text": "next words"}))
    assert "next words" not in body
    panel.post("/visit/stop", {"confirm": "yes"})


def test_a_visit_the_button_stops_after_the_kiosk_locked_still_opens_its_review(panel):
    """The kiosk follows a Stop on the button to the visit's Review: locking the idle kiosk on that
    request must not close the visit that was just stopped."""
    panel.set_pin()
    assert panel.post("/start", {"name": "AB"}).location == "/visit"
    assert panel.client.get("/visit").status_code == 200
    panel.clock.tick(31)  # a long visit, nobody touching the screen
    sid = panel.controller.stop(actor="button").id
    assert panel.client.get(f"/review/{sid}").status_code == 200
    assert panel.client.get("/history").location.startswith("/unlock")  # but the kiosk is locked
