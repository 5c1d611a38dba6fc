# dingbot-fc: every command creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt */requirements.txt | cksum | cut -d' ' -f1)
ARGS   ?=

.PHONY: help venv lint test run demo send build package doctor bench clean

help:
	@echo "make run    chat with the bot locally (offline by default)   ARGS='--fc2 --help ...'"
	@echo "make demo   a scripted conversation through the local stack"
	@echo "make test   the whole test suite"
	@echo "make lint   ruff, with the settings in ruff.toml"
	@echo "make send   send a signed test message: ARGS='--url URL --secret SECRET 你好'"
	@echo "make package  dist/*.zip for the FC console (Linux x86_64, CPython 3.10)"
	@echo "make doctor   check a configuration (.env) before or after deploying"
	@echo "make bench    measure against the tutorial's approach; writes docs/performance.md"

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "dingbot-fc needs Python 3.10 or newer (FC python3.10); run: make PYTHON=python3.10 ...")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

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

clean:
	rm -rf $(VENV) dist build .pytest_cache
