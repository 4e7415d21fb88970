"""Review in Chromium shows the refined pass's text when it arrives, and Undo gives the live text back.

The live recognizer here hears nothing but timing (asr.engine = "none"), so every live line is
empty; the refined pass (asr.refine_engine = "whisper-onnx" with tiny.en) is the only source of
words. Review is opened right after Stop, before the pass has handed its text over: the page must
say the pass is running, reload itself when the text arrives, and then say how many lines changed.
"""

from __future__ import annotations

from importlib import resources

import pytest

from tests.browser import chromium, free_port, new_page, panel_config, panel_daemon, start_visit, stop_on_panel
from tests.browser import wait_until as wait
from tests.daemon import installed_models_dir

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test

__all__ = ["chromium"]


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    models = installed_models_dir()
    tmp = tmp_path_factory.mktemp("panel-refined")
    demo = resources.files("appliance.data") / "demo_visit.flac"
    port = free_port()
    # Live: timing only; read as fast as it goes, so the pass is still on its window when Stop brings up Review.
    cfg = panel_config(tmp, demo, port, models_dir=models, extra="auto_lock_s = 900", realtime=False,
                       asr='engine = "none"\nrefine_engine = "whisper-onnx"\nrefine_model = "whisper-tiny.en"\n')
    with panel_daemon(cfg, port) as (daemon, base):
        yield daemon, base


def test_review_reloads_with_the_refined_text_and_undo_gives_the_live_lines_back(chromium, panel):
    daemon, base = panel
    page = new_page(chromium, "1280x800")
    start_visit(page, base, "R.P.")
    wait(lambda: daemon.status()["segments"] >= 8, 60, "the visit's lines stored")
    stop_on_panel(page)
    page.wait_for_url(f"{base}/review/*")
    texts = page.locator("#transcript .seg .text").all_inner_texts()
    refined_now = "improved" in (page.locator("#refined-msg").inner_text() if page.locator("#refined-msg").count()
                                 else "")
    if not refined_now:  # the usual case: the pass is still at its window
        assert "still running" in page.locator("#refined-msg").inner_text()
        assert texts and all(t == "(no words recognised)" for t in texts), texts
    page.locator("#refined-msg", has_text="improved").wait_for(timeout=90_000)  # after the page reloaded itself
    texts = page.locator("#transcript .seg .text").all_inner_texts()
    words = " ".join(texts).lower()
    assert "sore throat" in words and "strep" in words, texts
    assert sum(t != "(no words recognised)" for t in texts) >= 0.8 * len(texts)
    assert "Undo" in page.locator("#undo").inner_text() and "second pass" in page.locator("#undo").inner_text()
    with page.expect_navigation():
        page.click("#undo")
    texts = page.locator("#transcript .seg .text").all_inner_texts()
    assert texts and all(t == "(no words recognised)" for t in texts), texts
    assert "undone" in page.locator("#refined-msg").inner_text()
    page.context.close()
