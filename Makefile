# The two commands the README promises: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-arm64 lint typecheck binaries crds docs cluster-up clean constraints

$(STAMP): pyproject.toml hack/constraints.txt
	hack/check-disk.sh 8
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --progress-bar off -c hack/constraints.txt -e '.[test]'
	touch $(STAMP)

## The README's main command: a 64-model fleet, 16 per server, load-tested locally.
demo: $(STAMP)
	$(VENV)/bin/modelpack run -f examples/local/pack.yaml -f examples/local/loadtest.yaml

## Installs everything the tests need, builds the control plane binaries once, runs every test.
test: $(STAMP)
	hack/system-deps.sh
	hack/build-all.sh $(PY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) -m pytest -m "not arm64" ; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests selected"; rc=0; fi; exit $$rc
	hack/fresh-clock.sh $(PY) -m pytest -q -p no:cacheprovider -m "not cluster and not slow" $$(grep -v '^#' hack/fresh-clock-tests.txt)

## The arm64 server image under qemu (tests/arm64, docs/testing.md): not in `make test` for its cold cost (~21 min, ~18 GB).
test-arm64: $(STAMP)
	hack/system-deps.sh
	$(PY) -m pytest -m arm64 tests/arm64

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

binaries:
	$(PYTHON) -m tests.cluster.binaries

## Regenerates crds/ and the chart's copy from the pydantic types, and docs/api.md.
crds: $(STAMP)
	$(VENV)/bin/modelpack crds generate

cluster-up: $(STAMP)
	$(PY) -m tests.cluster up

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

## Refreshes hack/constraints.txt from the current venv (pip cannot resolve boto3+kubernetes+moto quickly unaided).
constraints:
	echo '# Versions the test suite was last run green with (pip freeze of the dev venv); `make constraints` refreshes it.' > hack/constraints.txt
	$(PY) -m pip freeze --exclude-editable >> hack/constraints.txt
