# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# `make test-quick` is the inner loop (unit tests, < 3 min on 2 cores); `make test-latest`
# runs the suite against the newest release of every dependency (see docs/contributing.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
OUT ?= demo_out
CORPUS ?=
HOLDOUT ?=
SEED ?=
DIFFICULTY ?=
PYTEST_ARGS ?=
STAMP := $(VENV)/.installed
# Debian packages: ffmpeg for the transcoder, SLURM + MariaDB for the cluster tests,
# chromium to render the report in a test.
APT_PKGS := ffmpeg slurmctld slurmd slurm-client slurmdbd munge mariadb-server chromium

.PHONY: install system-deps demo test test-quick test-latest latest-install gpu-check clean

install: $(STAMP)

$(STAMP): setup.cfg constraints.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	# torch first, alone: the matched CPU/CUDA trio; a second run finds it installed.
	$(PIP) install -q -c constraints.txt torch torchvision torchaudio
	DS_BUILD_OPS=0 $(PIP) install -q -c constraints.txt -e ".[test]"
	chmod -R o+rX $(VENV)
	touch $(STAMP)

system-deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

demo: install system-deps
	$(PY) -m pipeline demo out=$(OUT) $(if $(CORPUS),corpus=$(CORPUS)) $(if $(HOLDOUT),holdout=$(HOLDOUT)) $(if $(SEED),seed=$(SEED)) $(if $(DIFFICULTY),difficulty=$(DIFFICULTY))

test: install system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# the inner loop: everything but the tests marked slow (whole stages, training runs, the
# wheel build), the SLURM cluster and multi-process (gloo) tests
QUICK := not slow and not slurm and not distributed
test-quick: install system-deps
	$(PY) -m pytest -m "$(QUICK)" $(PYTEST_ARGS)

# A second environment without constraints.txt: the newest release of every dependency the
# package index offers (re-resolved on every run). What breaks is fixed, or bounded in
# setup.cfg with the reason. A site-wide pip constraint file (pip config list) caps it:
# LATEST_PIP_ENV="PIP_CONFIG_FILE=/dev/null" ignores pip's config files for this venv.
LATEST ?= .venv-latest
LPY := $(LATEST)/bin/python
LATEST_PIP_ENV ?=
LATEST_TESTS ?=
latest-install:
	test -x $(LPY) || python3 -m venv $(LATEST)
	$(LATEST_PIP_ENV) $(LPY) -m pip install -q --upgrade "pip>=24"
	$(LATEST_PIP_ENV) DS_BUILD_OPS=0 $(LPY) -m pip install -q --upgrade --upgrade-strategy eager -e ".[test]"
	chmod -R o+rX $(LATEST)
	@echo "newest-dependency environment $(LATEST):"
	@$(LPY) -m pip list --format=freeze | grep -iE '^(torch|torchvision|torchaudio|torchcodec|av|numpy|deepspeed|numba|llvmlite|submitit|decord|webdataset|scipy|scikit-learn|safetensors|omegaconf)==' | tee $(LATEST)/versions.txt

test-latest: latest-install system-deps
	$(LATEST_PIP_ENV) $(LPY) -m pytest $(if $(LATEST_TESTS),-m "$(LATEST_TESTS)") $(PYTEST_ARGS)

# on a machine with a CUDA GPU: decode, DeviceAugment and 20 steps of the paper-scale GDT
# recipe in bf16 on NCCL, as JSON (fails with one clear message without CUDA)
gpu-check: install system-deps
	$(PY) -m pipeline bench gpu json=$(OUT)/gpu_check.json

clean:
	rm -rf $(OUT) .pytest_cache
