# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
OUT ?= demo_out
CORPUS ?=
HOLDOUT ?=
SEED ?=
PYTEST_ARGS ?=
STAMP := $(VENV)/.installed
# Debian packages: ffmpeg for the transcoder, SLURM + MariaDB for the cluster tests,
# chromium to render the report in a test.
APT_PKGS := ffmpeg slurmctld slurmd slurm-client slurmdbd munge mariadb-server chromium

.PHONY: install system-deps demo test gpu-check clean

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
	$(PY) -m pipeline demo out=$(OUT) $(if $(CORPUS),corpus=$(CORPUS)) $(if $(HOLDOUT),holdout=$(HOLDOUT)) $(if $(SEED),seed=$(SEED))

test: install system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# on a machine with a CUDA GPU: decode, DeviceAugment and 20 steps of the paper-scale GDT
# recipe in bf16 on NCCL, as JSON (fails with one clear message without CUDA)
gpu-check: install system-deps
	$(PY) -m pipeline bench gpu json=$(OUT)/gpu_check.json

clean:
	rm -rf $(OUT) .pytest_cache
