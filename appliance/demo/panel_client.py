"""The touch panel driven over HTTP as a browser drives it: one cookie session, the CSRF token
read from each page's forms, Stop confirmed, the PIN typed where the panel asks for it.

Used by `appliance demo` (which stops and sends the visit and prints the note the Review screen
shows), by the system test and by the end-to-end benchmark. Standard library only.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Line:
    id: str
    speaker: str
    text: str


@dataclass
class ReviewPage:
    """What the Review screen shows of a visit: its lines and the notes from the clinic."""

    session_id: str
    state: str = ""
    lines: list[Line] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # template → note text


class _ReviewParser(HTMLParser):
    """Reads article.seg (data-id, .spk, .text) and article.note (h3 title, pre.note-text)."""

    def __init__(self, page: ReviewPage) -> None:
        super().__init__()
        self.page = page
        self._into: str | None = None  # which text is being collected
        self._buf: list[str] = []
        self._note_title = ""
        self._in_note = False
        self._in_seg = False  # inside an article.seg, before its tools

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "article" and "seg" in classes:
            self.page.lines.append(Line(a.get("data-id") or "", "", ""))
            self._in_seg = True
        elif "seg-tools" in classes:
            self._in_seg = False
        elif tag == "article" and "note" in classes:
            self._in_note = True
        elif tag == "span" and self._in_seg and {"spk", "text"} & set(classes) and self._into is None:
            self._into, self._buf = ("spk" if "spk" in classes else "text"), []
        elif tag == "h3" and self._in_note:
            self._into, self._buf = "title", []
        elif tag == "small" and self._into == "title":
            self._note_title, self._into = "".join(self._buf).strip(), "skip"
        elif tag == "pre" and "note-text" in classes:
            self._into, self._buf = "note", []
        elif a.get("id") == "visit-state":
            self._into, self._buf = "state", []

    def handle_data(self, data: str) -> None:
        if self._into not in (None, "skip"):
            self._buf.append(data)

    def handle_endtag(self, tag: str) -> None:
        text = "".join(self._buf)
        if tag == "article":
            self._in_seg = False
        if tag == "span" and self._into in ("spk", "text"):
            setattr(self.page.lines[-1], "speaker" if self._into == "spk" else "text", text.strip())
            self._into = None
        elif tag == "h3" and self._into in ("title", "skip"):
            if self._into == "title":
                self._note_title = text.strip()
            self._into = None
        elif tag == "pre" and self._into == "note":
            self.page.notes[self._note_title] = text.strip()
            self._into, self._in_note = None, False
        elif self._into == "state":
            self.page.state, self._into = text.strip(), None


class PanelError(RuntimeError):
    pass


class PanelClient:
    def __init__(self, base: str, timeout: float = 60.0) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self._csrf = ""
        self.visited: list[str] = []  # final path of every page loaded (redirects followed), in order

    # -- plain requests ------------------------------------------------------------------------

    def get(self, path: str) -> tuple[str, str]:
        """(final URL path after redirects, page HTML); remembers the page's CSRF token."""
        with self._opener.open(self.base + path, timeout=self.timeout) as r:
            return self._page(r)

    def post(self, path: str, form: dict[str, str | list[str]] | None = None) -> tuple[str, str]:
        """A form post with the CSRF token of the last page loaded, redirects followed."""
        if not self._csrf:
            self.get("/")
        fields = [("csrf_token", self._csrf)]
        for key, value in (form or {}).items():
            fields += [(key, v) for v in (value if isinstance(value, list) else [value])]
        data = urllib.parse.urlencode(fields).encode()
        with self._opener.open(self.base + path, data=data, timeout=self.timeout) as r:
            return self._page(r)

    def _page(self, resp: Any) -> tuple[str, str]:
        html = resp.read().decode()
        self.visited.append(urllib.parse.urlsplit(resp.geturl()).path)
        if m := CSRF.search(html):
            self._csrf = m.group(1)
        return self.visited[-1], html

    def status(self) -> dict[str, Any]:
        with self._opener.open(self.base + "/status", timeout=self.timeout) as r:
            return json.loads(r.read())

    # -- the clinician's steps -----------------------------------------------------------------

    def set_pin(self, pin: str) -> None:
        """First use on the device's own screen: set the PIN (this browser is then unlocked)."""
        self.get("/unlock")
        self.post("/pin", {"pin": pin, "confirm": pin, "next": "/"})

    def unlock(self, pin: str) -> None:
        path, html = self.post("/unlock", {"pin": pin, "next": "/history"})
        if path != "/history":
            raise PanelError(f"the panel refused the PIN: {_flash(html)}")

    def start(self, name: str, templates: list[str], consent: bool = True) -> None:
        self.get("/")
        path, html = self.post("/start", {"name": name, "template": templates, **({"consent": "yes"} if consent
                                                                                     else {})})
        if path != "/visit":
            raise PanelError(f"Start was refused: {_flash(html)}")

    def recording_screen(self) -> str:
        """Load the Recording screen (an audited view of the live transcript); its stream pass."""
        _, html = self.get("/visit")
        m = re.search(r'data-stream="([^"]+)"', html)
        return m.group(1) if m else ""

    def pause(self) -> None:
        self.post("/visit/pause")

    def resume(self) -> None:
        self.post("/visit/resume")

    def stop(self) -> str:
        """Stop, then "Yes, stop" on the question the panel asks; the visit's id (from Review)."""
        path, _ = self.post("/visit/stop")
        if not path.startswith("/visit"):
            raise PanelError(f"Stop without confirming went to {path}, not back to the question")
        path, html = self.post("/visit/stop", {"confirm": "yes"})
        if not path.startswith("/review/"):
            raise PanelError(f"Stop did not open Review ({path}): {_flash(html)}")
        return path.rsplit("/", 1)[1]

    def review(self, session_id: str) -> ReviewPage:
        path, html = self.get(f"/review/{session_id}")
        if not path.startswith("/review/"):
            raise PanelError(f"Review of {session_id} went to {path}")
        page = ReviewPage(session_id)
        _ReviewParser(page).feed(html)
        return page

    def edit_text(self, session_id: str, segment_id: str, text: str) -> None:
        _, html = self.post(f"/review/{session_id}/segment/{segment_id}/text", {"text": text})
        if "Text corrected." not in html:
            raise PanelError(f"edit refused: {_flash(html)}")

    def send(self, session_id: str) -> None:
        _, html = self.post(f"/review/{session_id}/send", {"consent": "yes"})
        if "Queued for the clinic" not in html:
            raise PanelError(f"Send refused: {_flash(html)}")

    def events(self, stream_pass: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
        """The panel's Server-Sent Events as (event, data); with a pass, the live text too."""
        query = f"?text={urllib.parse.quote(stream_pass)}" if stream_pass else ""
        with self._opener.open(self.base + "/events" + query, timeout=self.timeout) as r:
            kind = ""
            for raw in r:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    yield kind, json.loads(line[6:])


def _flash(html: str) -> str:
    m = re.search(r'class="flash[^"]*"[^>]*>(.*?)<', html, re.S)
    return m.group(1).strip() if m else "(no message on the page)"
