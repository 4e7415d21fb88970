"""A whole visit on the touch panel in Chromium, with real recognition of the bundled recording.

Start → live text → Pause (no new text) → Resume → Stop → Review: edit a word, swap speakers,
send to the clinic → the clinic's note shows and copies. Screenshots of the Recording and
Review screens at the three display sizes go to tests/artifacts/panel/.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest

from appliance.store import open_store
from tests.browser import (
    chromium,
    free_port,
    new_page,
    panel_config,
    panel_daemon,
    shot,
    small_targets,
    status,
    stop_on_panel,
)
from tests.browser import wait_until as wait
from tests.daemon import installed_models_dir

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test

__all__ = ["chromium"]
PARTIALS_JS = """() => { window.partials = [];
  new MutationObserver(() => { const p = document.getElementById('partial');
    if (!p.classList.contains('hidden') && p.textContent) window.partials.push([p.textContent, p.className,
        getComputedStyle(p).fontStyle]); }).observe(document.getElementById('partial'),
    {childList: true, characterData: true, subtree: true, attributes: true}); }"""


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    models = installed_models_dir()  # whisper-tiny.en (+ silero-vad, voicefilter-embedder) from `make models`
    tmp = tmp_path_factory.mktemp("panel-visit")
    demo = resources.files("appliance.data") / "demo_visit.flac"
    port = free_port()
    cfg = panel_config(tmp, demo, port, models_dir=models, extra="auto_lock_s = 900")
    with panel_daemon(cfg, port) as (daemon, base):
        yield daemon, base, tmp


def seg_count(page) -> int:
    return page.locator("#transcript .seg").count()


def test_a_whole_visit_on_the_panel(chromium, panel):
    _, base, tmp = panel
    page = new_page(chromium, "1280x800")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(base + "/")
    page.fill("#name", "J.D.")
    page.click('label.chip:has(input[value="H&P"])')
    page.check("#consent")
    page.click("#start")
    page.wait_for_url(base + "/visit")
    assert page.inner_text("#rec-state-text") == "RECORDING"
    assert "state-recording" in page.get_attribute("#rec", "class")
    page.evaluate(PARTIALS_JS)

    # Live text from the replayed room, with speaker labels; partials shown apart from finals.
    wait(lambda: seg_count(page) >= 1, 60, "first transcript line")
    first = page.locator("#transcript .seg").first
    assert len(first.locator(".text").inner_text().split()) >= 3
    assert re.fullmatch(r"Speaker \d", first.locator(".spk").inner_text())
    assert re.search(r"\bspk-[1-6]\b", first.get_attribute("class"))
    assert page.locator("#meter").evaluate("e => parseFloat(e.style.width)") > 0  # the level meter moves
    wait(lambda: page.evaluate("window.partials.length") > 0, 30, "a partial hypothesis")
    text, cls, style = page.evaluate("window.partials[0]")
    assert "partial" in cls and style == "italic" and text
    assert small_targets(page) == []
    shot(page, "visit")

    # Pause: the utterance in flight is still finished; nothing said after the pause reaches the page.
    page.click("#pause")
    page.wait_for_function("document.querySelector('#rec-state-text').textContent.startsWith('PAUSED')")
    assert page.inner_text("#live-badge-text") == "Paused"
    paused_at = status(base)["elapsed_s"]  # recorded time stands still while paused
    page.wait_for_timeout(6000)  # the recording keeps playing in the room meanwhile
    wait(lambda: status(base)["pending_s"] == 0, 60, "recognition of the utterance in flight")
    page.wait_for_timeout(3000)
    ends = page.eval_on_selector_all("#transcript .seg", "els => els.map(e => parseFloat(e.dataset.end))")
    assert ends and max(ends) <= paused_at + 0.05
    assert status(base)["elapsed_s"] == paused_at
    n = seg_count(page)
    assert status(base)["segments"] == n
    assert page.locator("#partial").is_hidden()
    assert page.locator("#meter").evaluate("e => parseFloat(e.style.width)") == 0
    shot(page, "visit-paused", ("800x480",))

    page.click("#resume")
    page.wait_for_function("document.querySelector('#rec-state-text').textContent === 'RECORDING'")
    wait(lambda: seg_count(page) > n, 60, "text after resume")

    stop_on_panel(page)
    page.wait_for_url(re.compile(r".*/review/[0-9a-f-]+$"), timeout=120_000)
    sid = page.url.rsplit("/", 1)[1]
    assert page.inner_text("#visit-state") in ("To review", "Reviewed")
    articles = page.locator("article.seg")
    assert articles.count() >= n + 1
    shot(page, "review")

    # Edit a word.
    seg = articles.first
    seg_id = seg.get_attribute("data-id")
    words = seg.locator(".text").inner_text().split()
    words[-1] = "stethoscope."
    new_text = " ".join(words)
    seg.locator("summary.edit-btn").click()
    seg.locator("textarea").fill(new_text)
    with page.expect_navigation():  # the form post redirects
        seg.locator("button.save-text").click()
    assert page.inner_text(".flash-ok") == "Text corrected."
    assert page.inner_text(f"#seg-{seg_id} .text") == new_text
    assert page.inner_text("#visit-state") == "Reviewed"

    # Swap speakers (the diarizer mixed them up).
    before = [page.inner_text(f"#seg-{i} .spk") for i in page.eval_on_selector_all(
        "article.seg", "els => els.map(e => e.dataset.id)")]
    names = sorted(set(before))
    assert len(names) >= 2
    page.click("#speakers > summary")
    page.select_option("#swap-form select[name=a]", label=names[0])
    page.select_option("#swap-form select[name=b]", label=names[1])
    with page.expect_navigation():  # the form post redirects
        page.click("#swap")
    after = page.locator("article.seg .spk").all_inner_texts()
    swap = {names[0]: names[1], names[1]: names[0]}
    assert after == [swap.get(x, x) for x in before]

    # Send to the clinic (consent was given at Start; SOAP and H&P requested).
    with page.expect_navigation():  # the form post redirects
        page.click("#send")
    assert page.inner_text("#visit-state") == "Queued for the clinic"
    assert page.locator("#send").count() == 0

    # What reached the store, and that every view of the transcript was audited.
    with open_store(str(tmp / "state" / "sessions.db")) as store:
        s = store.get_session(sid)
        assert s.state == "queued" and s.consent and s.templates == ("SOAP", "H&P") and s.name == "J.D."
        assert [o.revision for o in store.outbox_items(sid) if not o.superseded] == [s.revision]
        reads = [e.detail["reason"] for e in store.audit_events(sid) if e.action == "read" and e.actor == "panel"]
        assert "live transcript" in reads and reads.count("review") >= 4  # one per Review page shown
        edited = {g.id: g.text for g in store.read_transcript(sid, actor="test", reason="check edit")}
        assert edited[seg_id] == new_text
        # Whisper's token probabilities reach every recognised line as a 0–1 confidence, per line and per word.
        recognised = store.read_transcript(sid, actor="test", reason="check confidence", revision=1)
        assert recognised and all(g.confidence is not None and 0 < g.confidence <= 1 for g in recognised)
        assert all(g.word_confidence is not None and len(g.word_confidence) == len(g.text.split())
                   for g in recognised), [(g.text, g.word_confidence) for g in recognised]
        # The clinic returns a note (what the sync component does on a note message).
        note = "S: chest pain since Tuesday.\nP: ECG today."
        store.save_note(sid, s.revision, "SOAP", note, actor="sync")

    page.reload()
    assert "chest pain since Tuesday" in page.inner_text("#notes")
    page.click("#notes button.copy")
    # The clipboard answers asynchronously (a promise); "Copied" shows for 2 s once it has.
    page.wait_for_function("document.querySelector('#notes button.copy').textContent === 'Copied'", timeout=2000)
    assert page.evaluate("navigator.clipboard.readText()") == note
    shot(page, "review-note")
    page.context.close()
