# Neon: the README's two commands are `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench clean

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/neon-ros demo

test: setup
	bash scripts/test.sh

lint: setup
	$(VENV)/bin/ruff check neon_ros test launch

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
