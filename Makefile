# dingbot-fc: every command creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
LOCK   := requirements-dev.lock
STAMP  := $(VENV)/.installed-$(shell cksum < $(LOCK) | cut -d' ' -f1)
ARGS   ?=
# `make lock` regenerates every lock file with this exact uv; the function packages target FC's python3.10.
UV     := uv==0.13.9
FC_TARGET := --python-version 3.10 --python-platform x86_64-manylinux_2_17
COMPILE = $(PY) -m uv pip compile --quiet --custom-compile-command "make lock"

.PHONY: help venv lint test run demo send build package doctor bench lock clean

help:
	@echo "make run    chat with the bot locally (offline by default)   ARGS='--fc2 --help ...'"
	@echo "make demo   a scripted conversation through the local stack"
	@echo "make test   the whole test suite"
	@echo "make lint   ruff, with the settings in ruff.toml"
	@echo "make send   send a signed test message: ARGS='--url URL --secret SECRET 你好'"
	@echo "make package  dist/*.zip for the FC console (Linux x86_64, CPython 3.10)"
	@echo "make doctor   check a configuration (.env) before or after deploying"
	@echo "make bench    measure against the tutorial's approach (.local/bench/performance.md; ARGS=--write: docs/)"
	@echo "make lock     re-pin every dependency (requirements-dev.lock, */requirements.lock) with uv"

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "dingbot-fc needs Python 3.10 or newer (FC python3.10); run: make PYTHON=python3.10 ...")'
	@test -x $(PY) || { echo "setting up: creating $(VENV) with $$($(PYTHON) --version) ..."; $(PYTHON) -m venv $(VENV); }
	@echo "setting up: installing the pinned packages of $(LOCK) into $(VENV) (about a minute the first time) ..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -r $(LOCK)
	@rm -f $(VENV)/.installed-* && touch $@ && echo "setting up: done."

venv: $(STAMP)

lint: venv
	$(PY) -m ruff check .

test: venv
	$(PY) -m pytest $(ARGS)

run: venv
	@$(PY) scripts/chat.py $(ARGS)

demo: venv
	@$(PY) scripts/demo.py $(ARGS)

send: venv
	@$(PY) scripts/send_test_message.py $(ARGS)

build: venv
	$(PY) scripts/package.py --no-zip

package: venv
	$(PY) scripts/package.py

doctor: venv
	@$(PY) scripts/doctor.py $(ARGS)

bench: venv
	$(PY) bench/run.py $(ARGS)

lock: venv
	@$(PY) -m pip install --quiet --disable-pip-version-check $(UV)
	$(COMPILE) --universal --python-version 3.10 requirements-dev.txt -o requirements-dev.lock
	$(COMPILE) $(FC_TARGET) dingtalk_conversation/requirements.txt -o dingtalk_conversation/requirements.lock
	$(COMPILE) $(FC_TARGET) dingtalk_chatgpt_reply/requirements.txt -o dingtalk_chatgpt_reply/requirements.lock

clean:
	rm -rf $(VENV) dist build .pytest_cache
