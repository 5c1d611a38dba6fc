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
# The Serverless Devs CLI the tests render s.yaml with (`s preview`); installed only by `make serverless-devs`.
SERVERLESS_DEVS := @serverless-devs/s@3.1.10
COMPILE = $(PY) -m uv pip compile --quiet --custom-compile-command "make lock"

.PHONY: help venv lint test run demo send build package doctor bench lock mutate serverless-devs clean

help:
	@echo "make run       chat with the bot locally (offline unless .env names a model and its key)"
	@echo "make demo      a scripted conversation through the local stack"
	@echo "make test      the whole test suite            make lint   ruff, with ruff.toml"
	@echo "make send      a signed test message to a receiver (local stack by default)"
	@echo "make doctor    check .env before or after deploying"
	@echo "make package   dist/*.zip for the FC console   make build  build/ for s deploy"
	@echo "make bench     measure against the tutorial's approach (report in .local/bench/)"
	@echo "make lock      re-pin every dependency with uv"
	@echo "make serverless-devs   the Serverless Devs CLI the s.yaml test renders with"
	@echo ""
	@echo "Options go in ARGS, quoted as one argument:"
	@echo "  make run ARGS=\"--fc2 --stream\"        make run ARGS=\"--receiver-port 8001\""
	@echo "  make send ARGS=\"--url https://xxx.fcapp.run 你好\""
	@echo "  make doctor ARGS=\"--url https://xxx.fcapp.run --check-llm\""
	@echo "  make bench ARGS=--write              (updates docs/performance.md)"
	@echo "Each command lists its own options: make run ARGS=--help, make doctor ARGS=--help"

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
	$(COMPILE) --universal --python-version 3.10 -c requirements-dev.lock requirements-mutate.txt -o requirements-mutate.lock

# Mutation testing of shared/ (setup.cfg [mutmut]); long: pick modules with ARGS="shared.reply.oss.claims*".
mutate: venv
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-mutate.lock
	$(PY) -m mutmut run $(ARGS)
	@$(PY) -m mutmut results

serverless-devs:
	@command -v npm >/dev/null || { echo "npm is needed for the Serverless Devs CLI (Node.js 18+)"; exit 1; }
	npm install --save-exact --no-audit --no-fund --loglevel=error --prefix .local/serverless-devs $(SERVERLESS_DEVS)

clean:
	rm -rf $(VENV) dist build .pytest_cache
