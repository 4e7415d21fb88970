"""Review shows a line whose speaker the labeller was unsure of as uncertain ("Speaker 1?")
and offers the one-tap fix: tap who said it (another speaker moves the line, its own
speaker confirms it); either way the mark goes. Chromium, 800x480."""

from __future__ import annotations

import pytest

from appliance.store import open_store
from tests.browser import chromium, free_port, panel_daemon, shot, small_targets
from tests.test_panel_browser_care import post_and_wait, quiet_config, seed_visit, unlocked_page

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test

__all__ = ["chromium"]


def test_review_marks_unsure_speakers_and_fixes_them_in_one_tap(chromium, tmp_path):
    port = free_port()
    with panel_daemon(quiet_config(tmp_path, port), port) as (_daemon, base):
        db = tmp_path / "state" / "sessions.db"
        lines = [("S1", "How have you been?"), ("S1", "Not too bad, thanks."), ("S2", "The pain is better."),
                 ("S1", "Good to hear.")]
        sid = seed_visit(db, "Unsure", lines, [{}, {"speaker_uncertain": True}, {"speaker_uncertain": True}, {}])
        with open_store(str(db)) as store:
            ids = [g.id for g in store.read_transcript(sid, actor="test", reason="test")]
        page = unlocked_page(chromium, base, "800x480", f"/review/{sid}")
        shown = page.eval_on_selector_all("#transcript .seg .spk", "els => els.map(e => e.textContent.trim())")
        assert shown == ["Speaker 1", "Speaker 1?", "Speaker 2?", "Speaker 1"], shown
        assert page.locator(".speaker-unsure").count() == 2
        assert "Speaker unsure. Who said this?" in page.inner_text(f"#seg-{ids[1]} .speaker-unsure")
        assert small_targets(page) == []
        page.locator(f"#seg-{ids[1]}").scroll_into_view_if_needed()
        shot(page, "review-speaker-unsure", ("800x480",))

        # Line 2 was the other person: one tap on "Speaker 2" in its bar.
        post_and_wait(page, f"#seg-{ids[1]} .speaker-unsure button[value=S2]")
        # Line 3 was right: one tap on its own speaker confirms it.
        post_and_wait(page, f"#seg-{ids[2]} .speaker-unsure button[value=confirm]")
        shown = page.eval_on_selector_all("#transcript .seg .spk", "els => els.map(e => e.textContent.trim())")
        assert shown == ["Speaker 1", "Speaker 2", "Speaker 2", "Speaker 1"], shown
        assert page.locator(".speaker-unsure").count() == 0
        page.context.close()
    with open_store(str(db)) as store:
        got = [(g.speaker, g.speaker_uncertain) for g in store.read_transcript(sid, actor="test", reason="test")]
    assert got == [("S1", False), ("S2", False), ("S2", False), ("S1", False)]
