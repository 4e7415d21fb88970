"""What a clinician expects on the panel, in Chromium at 800×480 and 720×1280: consent asked at
Start (a warning while recording without it, or required), a Stop that asks first, the visit just
stopped and the waiting counts on Start, and on Review: undo with an "edited" mark, split / join /
add a line, "this speaker is me", a one-voice warning, Send in a bar that stays in view, and
discarding a visit with the PIN (purged like retention, audited).

A daemon with the timing-only recognizer and a quiet replayed microphone serves the panel; the
visits Review works on are written into its session database (real SQLite, shared with the daemon).
"""

from __future__ import annotations

import time

import pytest

from appliance.store import State, open_store
from tests.browser import (
    chromium,
    enter_pin,
    free_port,
    new_page,
    panel_config,
    panel_daemon,
    quiet_wav,
    set_pin_via_first_run,
    shot,
    small_targets,
    status,
)

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test

__all__ = ["chromium"]
PIN = "2580"
SIZES = {"800x480": (800, 480), "720x1280": (720, 1280)}


def quiet_config(tmp, port: int, extra: str = ""):
    return panel_config(tmp, quiet_wav(tmp / "quiet.wav"), port, models_dir=None, extra=f"auto_lock_s = 600\n{extra}")


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("panel-care")
    port = free_port()
    with panel_daemon(quiet_config(tmp, port), port) as (daemon, base):
        yield daemon, base, tmp / "state" / "sessions.db"


def in_view(page, selector: str) -> bool:
    """The element is visible and wholly inside the window (not scrolled away or cut off)."""
    return page.evaluate(
        """(sel) => { const e = document.querySelector(sel); if (!e) return false;
                      const r = e.getBoundingClientRect();
                      return r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0 &&
                             r.bottom <= window.innerHeight && r.right <= window.innerWidth; }""",
        selector,
    )


def sized(page, size: str) -> None:
    w, h = SIZES[size]
    page.set_viewport_size({"width": w, "height": h})
    page.wait_for_timeout(150)


def post_and_wait(page, selector: str) -> None:
    with page.expect_navigation():  # every form posts and redirects
        page.click(selector)


def seed_visit(db, name: str, lines: list[tuple[str, str]], scores: list[dict] | None = None) -> str:
    """A stopped visit with these (speaker, text) lines, as the recognizer would have stored it
    (``scores``: the confidences add_segment takes, per line)."""
    with open_store(str(db)) as store:
        s = store.create_session(name, "exam-1", "", "room-device", "clinic", ["SOAP"])
        store.transition(s.id, "recording", "test")
        for i, (speaker, text) in enumerate(lines):
            store.add_segment(s.id, 3.0 * i, 3.0 * i + 2.5, speaker, text, **(scores[i] if scores else {}))
        store.transition(s.id, "stopped", "test")
        return s.id


def unlocked_page(chromium, base: str, size: str, screen: str = "/history"):
    """A page past the PIN (set on first use), showing ``screen``; the PIN was asked for it."""
    page = new_page(chromium, size)
    page.goto(base + screen)
    assert "/unlock" in page.url
    if page.locator("#setpin").count():
        set_pin_via_first_run(page, base, PIN, screen)
    else:
        enter_pin(page, PIN)
        page.wait_for_url(base + screen)
    return page


# -- Recording: consent and Stop -------------------------------------------------------------------

@pytest.mark.parametrize("size", list(SIZES))
def test_a_visit_without_consent_warns_and_stop_asks_first(chromium, panel, size):
    _, base, db = panel
    page = new_page(chromium, size)
    page.goto(base + "/")
    page.fill("#name", f"NC-{size}")
    post_and_wait(page, "#start")  # consent not ticked: "warn" (the default) starts anyway
    assert page.url == base + "/visit"
    sid = status(base)["session_id"]
    assert in_view(page, "#consent-warning"), "the missing consent must be on screen while recording"
    assert "Consent not recorded" in page.inner_text("#consent-warning")
    assert in_view(page, "#pause") and in_view(page, "#stop")  # the warning hides no control
    shot(page, "care-consent-warning", (size,))

    # A tap on Stop does not stop: it asks, and "Keep recording" leaves the visit running.
    page.click("#stop")
    assert in_view(page, "#stop-confirm") and in_view(page, "#stop-cancel")
    assert small_targets(page) == []
    shot(page, "care-stop-ask", (size,))
    time.sleep(1.0)
    assert status(base)["state"] == "recording"
    page.click("#stop-cancel")
    assert not page.locator("#stop-confirm").is_visible()
    assert status(base)["state"] == "recording" and status(base)["session_id"] == sid

    post_and_wait(page, "#consent-given")  # the patient agrees now
    assert page.locator("#consent-warning").count() == 0
    with open_store(str(db)) as store:
        assert store.get_session(sid).consent

    page.click("#stop")
    post_and_wait(page, "#stop-confirm")
    assert page.url == f"{base}/review/{sid}"
    assert status(base)["state"] != "recording"

    # Start shows the visit just stopped and what waits, without the PIN (no other names).
    page.goto(base + "/")
    assert in_view(page, "#last-visit")
    assert f"NC-{size}" in page.inner_text("#last-visit-name")
    assert "to review" in page.inner_text("#waiting")
    with open_store(str(db)) as store:
        waiting = len(store.list_sessions([State.STOPPED, State.REVIEWED]))
    assert page.inner_text("#waiting").startswith(f"{waiting} visit")
    assert small_targets(page) == []
    shot(page, "care-start-waiting", (size,))
    page.click("#last-visit-open")
    page.wait_for_url(f"{base}/review/{sid}")
    page.context.close()


def test_start_needs_consent_when_configured(chromium, tmp_path):
    port = free_port()
    with panel_daemon(quiet_config(tmp_path, port, 'start_consent = "required"'), port) as (daemon, base):
        page = new_page(chromium, "800x480")
        page.goto(base + "/")
        page.fill("#name", "REQ")
        post_and_wait(page, "#start")
        assert "tick the box before starting" in page.inner_text(".flash-error")
        assert status(base)["state"] == "idle" and status(base)["session_id"] is None
        assert page.input_value("#name") == "REQ"  # nothing typed is lost
        assert "(needed to start)" in page.inner_text("#start-form")
        shot(page, "care-consent-required", tuple(SIZES))
        page.check("#consent")
        post_and_wait(page, "#start")
        assert page.url == base + "/visit" and status(base)["state"] == "recording"
        assert page.locator("#consent-warning").count() == 0
        daemon.ctl("stop")
        page.context.close()


# -- Review -----------------------------------------------------------------------------------------

LINES = [("S1", "good morning what brings you in"), ("S2", "my knee hurts when I climb stairs"),
         ("S1", "how long has it been"), ("S2", "about three weeks"), ("S1", "any swelling"),
         ("S2", "a little in the evening"), ("S1", "let me have a look")]


@pytest.mark.parametrize("size", list(SIZES))
def test_review_bar_stays_in_view_and_speaker_is_me(chromium, panel, size):
    _, base, db = panel
    sid = seed_visit(db, f"BAR-{size}", LINES)
    page = unlocked_page(chromium, base, size)
    page.goto(f"{base}/review/{sid}")
    for where in ("0", "document.querySelector('main').scrollHeight"):
        page.evaluate(f"document.querySelector('main').scrollTo(0, {where})")
        page.wait_for_timeout(100)
        for sel in ("#send", "#bar-name", "#bar-state"):
            assert in_view(page, sel), f"{sel} scrolled out of view ({size}, scrolled to {where})"
    assert page.inner_text("#bar-name") == f"BAR-{size}"
    for summary in page.locator("#transcript article.seg").first.locator("summary").all():
        summary.click()  # every line tool open: each target still at least 48 px
    assert small_targets(page) == []
    assert page.locator("#one-speaker").count() == 0
    shot(page, "care-review-bar", (size,))

    post_and_wait(page, "#me-S2")  # "Speaker 2 is me": no enrolment needed
    assert page.locator("#transcript .seg .spk").all_inner_texts() == \
        ["Patient", "Clinician", "Patient", "Clinician", "Patient", "Clinician", "Patient"]
    assert page.locator("#whoami").count() == 0
    with open_store(str(db)) as store:
        assert store.speakers(sid) == {"S1": "Patient", "S2": "Clinician"}
    page.context.close()


def test_one_voice_in_a_visit_is_warned(chromium, panel):
    _, base, db = panel
    sid = seed_visit(db, "ONE", [("S1", "so the pain started last week"), ("S1", "and it is worse at night")])
    page = unlocked_page(chromium, base, "800x480")
    page.goto(f"{base}/review/{sid}")
    assert in_view(page, "#one-speaker")
    assert "Only one voice" in page.inner_text("#one-speaker")
    page.context.close()


def line(page, index: int):
    return page.locator("#transcript article.seg").nth(index)


def test_edit_marks_and_undo_split_join_and_add_a_line(chromium, panel):
    _, base, db = panel
    sid = seed_visit(db, "EDIT", LINES[:3])
    page = unlocked_page(chromium, base, "800x480")
    page.goto(f"{base}/review/{sid}")
    assert page.locator(".edited-mark").count() == 0 and page.locator("#undo").count() == 0

    first = line(page, 0)
    first.locator("summary.edit-btn").click()
    first.locator("textarea").fill("Good morning, what brings you in?")
    post_and_wait(page, f"#{first.get_attribute('id')} button.save-text")
    assert line(page, 0).locator(".text").inner_text() == "Good morning, what brings you in?"
    assert line(page, 0).locator(".edited-mark").inner_text() == "edited"
    assert in_view(page, "#undo") and page.get_attribute("#undo", "aria-label") == "Undo the corrected words"
    sized(page, "720x1280")  # there is room to say it on the button too
    assert " ".join(page.inner_text("#undo").split()) == "Undo the corrected words"
    sized(page, "800x480")
    shot(page, "care-review-edited", tuple(SIZES))
    post_and_wait(page, "#undo")
    assert "Undone: the corrected words" in page.inner_text(".flash-ok")
    assert line(page, 0).locator(".text").inner_text() == "good morning what brings you in"
    assert page.locator(".edited-mark").count() == 0

    # Split line 2 before "when"; join it back; add a missed sentence after line 1.
    second = line(page, 1)
    second.locator("summary.split-btn").click()
    post_and_wait(page, f"#{second.get_attribute('id')} .split-form button.word:text-is('when')")
    texts = page.locator("#transcript .seg .text").all_inner_texts()
    assert texts == ["good morning what brings you in", "my knee hurts", "when I climb stairs", "how long has it been"]
    assert page.locator(".edited-mark").count() == 2
    post_and_wait(page, f"#{line(page, 1).get_attribute('id')} button.join-btn")
    assert page.locator("#transcript .seg .text").all_inner_texts()[1] == "my knee hurts when I climb stairs"
    first = line(page, 0)
    first.locator("summary.add-btn").click()
    first.locator(".insert-form input.add-text").fill("I have had it since my holiday")
    post_and_wait(page, f"#{first.get_attribute('id')} .insert-form button[value=S2]")
    assert page.locator("#transcript .seg .text").all_inner_texts()[1] == "I have had it since my holiday"
    assert line(page, 1).get_attribute("data-speaker") == "S2"
    with open_store(str(db)) as store:
        actions = [e.action for e in store.audit_events(sid) if e.action.startswith("edit:")]
    assert actions == ["edit:text", "edit:undo", "edit:split", "edit:merge", "edit:insert"]
    for _ in range(3):
        post_and_wait(page, "#undo")
    assert page.locator("#transcript .seg .text").all_inner_texts() == [t for _, t in LINES[:3]]
    page.context.close()


def test_discard_a_visit_needs_the_pin_and_purges_it(chromium, panel):
    _, base, db = panel
    sid = seed_visit(db, "WRONG", LINES[:2])
    page = unlocked_page(chromium, base, "800x480")
    page.goto(f"{base}/review/{sid}")
    page.click("#discard")
    page.wait_for_url(f"{base}/review/{sid}/discard")
    assert "WRONG" in page.inner_text("#discard-name")
    page.check("#why-wrong-patient")
    for digit in "1111":
        page.click(f'.keypad button[data-key="{digit}"]')
    post_and_wait(page, "#discard-confirm")  # wrong PIN: refused, counted, nothing deleted
    assert "Wrong PIN" in page.inner_text(".flash-error")
    with open_store(str(db)) as store:
        assert store.get_session(sid).state == State.STOPPED
    page.check("#why-wrong-patient")
    for digit in PIN:
        page.click(f'.keypad button[data-key="{digit}"]')
    for size in SIZES:
        sized(page, size)
        assert in_view(page, "#discard-confirm") or page.locator("#discard-confirm").is_visible()
    shot(page, "care-discard", tuple(SIZES))
    post_and_wait(page, "#discard-confirm")
    assert page.url == base + "/" and "discarded" in page.inner_text(".flash-ok")
    with open_store(str(db)) as store:
        s = store.get_session(sid)
        assert (s.state, s.purge_reason, s.name) == (State.PURGED, "discarded", "")
        events = [(e.action, e.detail.get("why")) for e in store.audit_events(sid)]
        assert ("discard", "wrong-patient") in events and ("panel:pin-failed", None) in events
        assert store._db.execute("SELECT COUNT(*) FROM segments WHERE session_id = ?", [sid]).fetchone()[0] == 0
    page.goto(f"{base}/review/{sid}")
    assert page.inner_text("#visit-state") == "Discarded"
    assert "discarded on the panel" in page.inner_text("#purged-text")
    page.context.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_words_the_recogniser_was_unsure_of_are_marked_until_corrected(chromium, panel, size):
    _, base, db = panel
    lines = [*LINES[:3], ("S2", "about three weeks")]
    scores = [{"confidence": 0.92}, {"confidence": 0.28}, {},  # a whole line unsure (no word scores)
              {"confidence": 0.7, "word_confidence": [0.97, 0.31, 0.9]}]  # one word unsure
    sid = seed_visit(db, f"CONF-{size}", lines, scores)
    page = unlocked_page(chromium, base, size)
    page.goto(f"{base}/review/{sid}")
    marked = [line(page, i).locator(".text.low-conf").count() for i in range(4)]
    assert marked == [0, 1, 0, 0]  # below panel.low_confidence (0.5); unknown is not marked
    assert line(page, 3).locator("mark.low-word").all_inner_texts() == ["three"]
    assert line(page, 3).locator(".text").inner_text() == "about three weeks"
    assert [line(page, i).locator(".check-mark").count() for i in range(4)] == [0, 1, 0, 1]
    line(page, 1).scroll_into_view_if_needed()
    shot(page, "care-review-low-confidence", (size,))
    unsure = line(page, 1)
    unsure.locator("summary.edit-btn").click()
    unsure.locator(".edit-form textarea").fill("My knee hurts when I climb stairs.")
    post_and_wait(page, f"#{unsure.get_attribute('id')} button.save-text")
    assert page.locator(".check-mark").count() == 1  # a person checked those words
    line(page, 3).locator("summary.speaker-btn, summary:text-is('Speaker')").click()
    post_and_wait(page, f"#{line(page, 3).get_attribute('id')} .speaker-form button[value=S1]")
    assert line(page, 3).locator("mark.low-word").all_inner_texts() == ["three"]  # a speaker change is not
    page.context.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_note_status_shows_beside_the_transcript(chromium, panel, size):
    _, base, db = panel
    sid = seed_visit(db, f"NOTES-{size}", LINES[:2])
    with open_store(str(db)) as store:
        store.set_consent(sid, True, "test")
        store.set_templates(sid, ["SOAP", "H&P"], "test")
    page = unlocked_page(chromium, base, size)
    page.goto(f"{base}/review/{sid}")
    assert page.locator("#note-status").count() == 0  # nothing requested before Send

    def shown() -> dict[str, str]:
        page.reload()
        assert in_view(page, "#note-status")
        return {li.get_attribute("data-template"): li.inner_text()
                for li in page.locator("#note-status li").all()}

    post_and_wait(page, "#send")
    assert shown() == {"SOAP": "SOAP requested", "H&P": "H&P requested"}
    with open_store(str(db)) as store:
        [item] = store.outbox_items(sid)
        store.mark_acked(item.id)  # what the sync does when the clinic acknowledges
    assert shown() == {"SOAP": "SOAP being written", "H&P": "H&P being written"}
    with open_store(str(db)) as store:
        store.save_note(sid, item.revision, "SOAP", "S: knee pain for three weeks.", actor="sync")
    assert shown() == {"SOAP": "SOAP ready", "H&P": "H&P being written"}
    shot(page, "care-note-status", (size,))
    page.context.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_history_search_needs_the_pin_and_is_audited(chromium, panel, size):
    _, base, db = panel
    word = f"sciatica{size[:3]}"  # only in this test's visit
    found = seed_visit(db, f"FIND-{size}", [("S1", "where does it hurt"), ("S2", f"it feels like {word} again")])
    page = unlocked_page(chromium, base, size, "/history/search")  # like History: the PIN first
    page.goto(base + "/history")
    page.fill("#search-q", word.upper())
    with page.expect_navigation():
        page.click("#search-go")
    assert page.inner_text("#search-count").startswith("1 visit")
    rows = page.locator("#search-results .hist-row")
    assert rows.count() == 1 and f"FIND-{size}" in rows.first.inner_text()
    assert f"it feels like {word} again" in rows.first.inner_text()
    assert small_targets(page) == []
    shot(page, "care-history-search", (size,))
    with open_store(str(db)) as store:
        searches = [e for e in store.audit_events() if e.action == "search"]
        assert searches[-1].detail == {"reason": "history search", "hits": 1, "chars": len(word)}
        assert store.audit_events(found)[-1].action == "read"
        assert store.audit_events(found)[-1].detail["reason"] == "history search"
    rows.first.click()
    page.wait_for_url(f"{base}/review/{found}")
    page.context.close()
