"""A minimal client for an OpenAI-compatible chat API (llama.cpp server, vLLM, Ollama): one POST to
`<url>/chat/completions` per request, plain urllib, no SDK. Any failure to get a usable answer
(refused, timed out, HTTP error, not the expected JSON) is an `LlmUnavailable` naming the cause."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from clinic.config import LlmConfig


class LlmUnavailable(RuntimeError):
    """The server gave no usable answer; the message says why (for the fallback mark and the user)."""


@dataclass(frozen=True)
class Message:
    role: str  # system | user | assistant
    content: str


@dataclass(frozen=True)
class Reply:
    text: str
    finish_reason: str  # "stop"; "length" when cut at max_tokens
    model: str


def configured(cfg: LlmConfig) -> bool:
    return bool(cfg.url.strip())


def chat(cfg: LlmConfig, messages: list[Message], max_tokens: int | None = None) -> Reply:
    """One chat completion, or LlmUnavailable. `timeout_s` bounds the connection and the wait for
    the (non-streamed) answer."""
    if not configured(cfg):
        raise LlmUnavailable("no LLM is configured ([llm] url is empty)")
    url = cfg.url.rstrip("/") + "/chat/completions"
    body: dict[str, Any] = {"messages": [{"role": m.role, "content": m.content} for m in messages],
                            "temperature": cfg.temperature, "max_tokens": max_tokens or cfg.max_tokens,
                            "stream": False}
    if cfg.model:
        body["model"] = cfg.model
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=cfg.timeout_s) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace").strip()
        raise LlmUnavailable(f"{url} answered HTTP {exc.code}: {detail or exc.reason}") from None
    except TimeoutError:
        raise LlmUnavailable(f"{url} did not answer within {cfg.timeout_s:g} s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise LlmUnavailable(f"{url} did not answer within {cfg.timeout_s:g} s") from None
        raise LlmUnavailable(f"cannot reach {url}: {reason}") from None
    except OSError as exc:  # connection reset mid-answer, …
        raise LlmUnavailable(f"{url} failed: {exc}") from None
    return _reply(url, raw)


def _reply(url: str, raw: bytes) -> Reply:
    try:
        data = json.loads(raw)
        choice = data["choices"][0]
        text = choice["message"]["content"]
        if not isinstance(text, str):
            raise TypeError("content is not a string")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LlmUnavailable(f"{url} answered something that is not a chat completion ({exc}): "
                             f"{raw[:200]!r}") from None
    return Reply(text=text, finish_reason=str(choice.get("finish_reason") or ""), model=str(data.get("model", "")))
