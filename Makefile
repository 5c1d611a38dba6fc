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

.PHONY: help venv lint test run demo send build package doctor bench report kb lock mutate serverless-devs clean

help:
	@echo "make run       在本机和机器人聊天（.env 里没写模型和 Key 时用离线模型）"
	@echo "make demo      一段预先写好的对话，走完整条本地链路"
	@echo "make test      运行全部测试                     make lint   ruff 检查（ruff.toml）"
	@echo "make send      向接收函数发一条签名正确的测试消息（默认发给本地 make run，并显示回答）"
	@echo "make doctor    部署前后检查 .env"
	@echo "make package   生成控制台上传用的 dist/*.zip     make build  生成 s deploy 用的 build/"
	@echo "make bench     与教程原方案对比的性能基准（报告在 .local/bench/）"
	@echo "make report    用量报告：HTML 图表和 PNG 概览（默认读本地 make run 的记录）"
	@echo "make kb        为知识库目录建立或刷新索引（ARGS=\"--oss-dir 目录\"）"
	@echo "make mutate    对 shared/ 做变异测试（mutmut，较慢）"
	@echo "make lock      用 uv 重新锁定所有依赖"
	@echo "make serverless-devs   安装 s.yaml 测试用的 Serverless Devs CLI"
	@echo ""
	@echo "选项写在 ARGS 里，整体加引号："
	@echo "  make run ARGS=\"--fc2 --stream\"        make run ARGS=\"--receiver-port 8001\""
	@echo "  make send ARGS=\"--url https://xxx.fcapp.run 你好\""
	@echo "  make doctor ARGS=\"--url https://xxx.fcapp.run --check-llm\""
	@echo "  make bench ARGS=--write              （更新 docs/performance.md）"
	@echo "每个命令都能列出自己的选项：make run ARGS=--help、make doctor ARGS=--help"

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "dingbot-fc 需要 Python 3.10 或更新的版本（与 FC 的 python3.10 一致）；请运行 make PYTHON=python3.10 ...")'
	@test -x $(PY) || { echo "准备环境：用 $$($(PYTHON) --version) 创建 $(VENV) ..."; $(PYTHON) -m venv $(VENV); }
	@echo "准备环境：把 $(LOCK) 锁定的包装进 $(VENV)（第一次大约一分钟）..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -r $(LOCK)
	@rm -f $(VENV)/.installed-* && touch $@ && echo "准备环境：完成。"

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
	$(COMPILE) --universal --python-version 3.10 -c requirements-dev.lock requirements-report.txt -o requirements-report.lock

kb: venv
	@$(PY) scripts/kb.py $(ARGS)

# The usage report (HTML with inline charts, and a PNG); the first run also installs a Chinese font for the charts.
report: venv
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-report.lock
	@$(PY) scripts/report.py $(ARGS)

# Mutation testing of shared/ (setup.cfg [mutmut]); long: pick modules with ARGS="shared.reply.oss.claims*".
mutate: venv
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-mutate.lock
	$(PY) -m mutmut run $(ARGS)
	@$(PY) -m mutmut results

serverless-devs:
	@command -v npm >/dev/null || { echo "安装 Serverless Devs CLI 需要 npm（Node.js 18 以上）"; exit 1; }
	npm install --save-exact --no-audit --no-fund --loglevel=error --prefix .local/serverless-devs $(SERVERLESS_DEVS)

clean:
	rm -rf $(VENV) dist build .pytest_cache
