# shieldgym: two commands for a fresh machine.
#   make run   installs everything into .venv and runs the shielded safety benchmark (table + plot)
#   make test  installs everything into .venv and runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH ?= torch==2.13.0
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export OMP_NUM_THREADS ?= 1

.PHONY: install run test lint typecheck clean

install: $(VENV)/.installed

# The published benchmark packages pin old stacks: they go in with --no-deps, after their real
# dependencies (the extras in pyproject.toml). torch is pinned so pip takes the CPU wheel.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -c constraints.txt -e ".[all,dev]"
	$(PIP) install -q --no-deps "safety-gymnasium==1.0.0" "bullet-safety-gym==1.4.0"
	touch $@

run: install
	$(VENV)/bin/shieldgym benchmark --out benchmarks/results/main

test: install
	SHIELDGYM_STRICT=1 $(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check shieldgym tests benchmarks examples
	$(VENV)/bin/ruff format --check shieldgym tests benchmarks examples

typecheck: install
	$(VENV)/bin/mypy shieldgym

clean:
	rm -rf $(VENV) build *.egg-info
