"""The live transcript keeps the words being spoken in view, with real recognition, in Chromium.

The bundled recording is recognised by Whisper while two screens watch the same visit: the
7" landscape display (800×480) and the Pi Touch Display 2 in portrait (720×1280). Every time
the partial line (the words being spoken) changes once the transcript has more lines than fit,
it must be inside both the screen and the transcript's visible box; after the clinician scrolls
up to read, new lines must not pull the transcript away from what they are reading.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest

from tests.browser import chromium, free_port, panel_config, panel_daemon, shot, start_visit, status, stop_on_panel
from tests.browser import wait_until as wait
from tests.daemon import installed_models_dir

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test

__all__ = ["chromium"]
# Each change of the partial line: how many lines exist, and whether the partial is visible.
WATCH_JS = """() => { window.samples = [];
  const p = document.getElementById('partial'), t = document.getElementById('transcript');
  new MutationObserver(() => {
    if (p.classList.contains('hidden') || !p.textContent) return;
    const r = p.getBoundingClientRect(), box = t.getBoundingClientRect();
    window.samples.push({lines: t.querySelectorAll('.seg').length, overflowing: t.scrollHeight > t.clientHeight,
      visible: r.top >= Math.max(0, box.top) - 1 && r.bottom <= Math.min(innerHeight, box.bottom) + 1});
  }).observe(p, {childList: true, characterData: true, subtree: true, attributes: true}); }"""


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    models = installed_models_dir()
    tmp = tmp_path_factory.mktemp("panel-live")
    demo = resources.files("appliance.data") / "demo_visit.flac"
    port = free_port()
    cfg = panel_config(tmp, demo, port, models_dir=models, extra="auto_lock_s = 900")
    with panel_daemon(cfg, port) as (daemon, base):
        yield daemon, base


def lines(page) -> int:
    return page.locator("#transcript .seg").count()


def test_the_words_being_spoken_stay_in_view_unless_the_clinician_scrolled_up(chromium, panel):
    _, base = panel
    context = chromium.new_context(viewport={"width": 800, "height": 480}, has_touch=True)
    landscape = context.new_page()
    start_visit(landscape, base, "L.V.")
    portrait = context.new_page()
    portrait.set_viewport_size({"width": 720, "height": 1280})
    portrait.goto(base + "/visit")
    for page in (landscape, portrait):
        page.evaluate(WATCH_JS)

    # Let the visit run until the 800x480 transcript is well past full, then read the samples.
    wait(lambda: lines(landscape) >= 7 and landscape.evaluate(
        "() => window.samples.filter(s => s.lines >= 5 && s.overflowing).length") >= 3, 120,
        "partials over a full transcript")
    for page, size in ((landscape, "800x480"), (portrait, "720x1280")):
        samples = page.evaluate("window.samples")
        late = [s for s in samples if s["lines"] >= 5]
        assert late and all(s["visible"] for s in late), (size, samples)
        newest = page.locator("#transcript .seg").last.bounding_box()
        assert newest["y"] + newest["height"] <= page.viewport_size["height"] + 1, size
    shot(landscape, "visit-long", ("800x480",))
    shot(portrait, "visit-long", ("720x1280",))

    # The clinician scrolls up to re-read a line: new lines must not yank the view back down.
    box = landscape.locator("#transcript").bounding_box()
    landscape.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    landscape.mouse.wheel(0, -5000)
    wait(lambda: landscape.evaluate("document.getElementById('transcript').scrollTop") == 0, 5, "scrolled up")
    n = lines(landscape)
    wait(lambda: lines(landscape) > n or status(base)["elapsed_s"] > 33.5, 60, "another line")
    landscape.wait_for_timeout(500)
    assert landscape.evaluate("document.getElementById('transcript').scrollTop") == 0
    # Scrolled back to the end, it follows again.
    landscape.mouse.wheel(0, 50_000)
    landscape.evaluate("window.samples = []")
    wait(lambda: landscape.evaluate("window.samples.length") > 0 or status(base)["elapsed_s"] > 33.5, 30,
         "a partial after scrolling back")
    assert all(s["visible"] for s in landscape.evaluate("window.samples"))

    with landscape.expect_navigation(url=re.compile(r".*/review/[0-9a-f-]+$"), timeout=120_000):
        stop_on_panel(landscape)
    context.close()
