"""The clinician tools' server-side rules, in-process (real controller, store and file capture):
the panel's Stop needs its confirmation, discard needs the PIN even when unlocked and refuses a
visit waiting in the outbox, search and discard follow who may see what."""

from __future__ import annotations

import pytest

from appliance.store import State
from tests.test_panel_app import PIN, panel

__all__ = ["panel"]  # the fixture: a panel app on a real store, from test_panel_app


def test_stop_without_its_confirmation_keeps_recording(panel):
    assert panel.post("/start", {"name": "AB", "consent": "yes"}).location == "/visit"
    r = panel.post("/visit/stop")  # a stray tap, or a form without the "Yes, stop" answer
    assert r.status_code == 302 and r.location == "/visit#stop-ask"
    assert panel.controller.session is not None and panel.controller.session.state == State.RECORDING
    r = panel.post("/visit/stop", {"confirm": "yes"})
    assert r.location.startswith("/review/") and panel.controller.session is None


@pytest.mark.slow
def test_discard_asks_the_pin_again_and_refuses_a_visit_in_the_outbox(panel):
    sid = panel.visit()  # just stopped: open to the room
    panel.set_pin()
    r = panel.post(f"/review/{sid}/discard", {"why": "wrong-patient"})  # unlocked, but no PIN typed
    assert "Wrong PIN" in panel.get(r.location).get_data(as_text=True)
    r = panel.post(f"/review/{sid}/discard", {"why": "made-up", "pin": PIN})
    assert "choose why" in panel.get(r.location).get_data(as_text=True)
    assert panel.store.get_session(sid).state == State.STOPPED
    panel.post(f"/review/{sid}/send", {"consent": "yes"})
    r = panel.post(f"/review/{sid}/discard", {"why": "consent-withdrawn", "pin": PIN})
    assert "waiting to be delivered" in panel.get(r.location).get_data(as_text=True)
    assert panel.store.get_session(sid).state == State.QUEUED
    assert "discard" not in [e.action for e in panel.store.audit_events(sid)]


@pytest.mark.slow
def test_an_earlier_visit_and_search_need_the_pin(panel):
    old = panel.visit()
    panel.set_pin()
    panel.post("/lock")
    panel.visit()  # another patient: the earlier visit is no longer open to the room
    for url in (f"/review/{old}/discard", "/history/search?q=anything"):
        r = panel.client.get(url)
        assert r.status_code == 302 and r.location.startswith("/unlock"), url
    r = panel.post(f"/review/{old}/discard", {"why": "test", "pin": PIN})
    assert r.location.startswith("/unlock") and panel.store.get_session(old).state == State.STOPPED
    assert "search" not in [e.action for e in panel.store.audit_events()]
