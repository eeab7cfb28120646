# mlbatch: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
STORAGE ?= mlbatch-data
PYTEST_ARGS ?=

.PHONY: setup run test lint bench clean

setup: $(STAMP) ## a .venv in the checkout, installed with constraints.txt

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

run: setup ## the flights demo on the embedded default (local executor, file storage)
	$(BIN)/mlbatch demo-data --storage $(STORAGE)
	$(BIN)/mlbatch run examples/flights.yaml --storage $(STORAGE)

test: setup mlflow-server ## every test, slow ones included
	$(BIN)/pytest tests --durations=30 $(PYTEST_ARGS)

# The tests' MLflow tracking server: full mlflow pins an older pyarrow than ours, so it gets
# its own venv (tests/mlflow_server.py finds it); the controller's client is in .venv.
MLFLOW_SERVER_VENV := $(VENV)/mlflow-server
MLFLOW_SERVER_STAMP := $(MLFLOW_SERVER_VENV)/.installed-$(shell cat tests/mlflow-server-*.txt | cksum | cut -d' ' -f1)
.PHONY: mlflow-server
mlflow-server: $(MLFLOW_SERVER_STAMP) ## full MLflow for the tests' tracking server, in .venv/mlflow-server

$(MLFLOW_SERVER_STAMP): tests/mlflow-server-requirements.txt tests/mlflow-server-constraints.txt
	$(PYTHON) -m venv $(MLFLOW_SERVER_VENV)
	$(MLFLOW_SERVER_VENV)/bin/python -m pip install --quiet -r tests/mlflow-server-requirements.txt \
	  -c tests/mlflow-server-constraints.txt
	rm -f $(MLFLOW_SERVER_VENV)/.installed-* && touch $@

lint: setup
	$(BIN)/ruff check lib jobs tests bench
	@if ls images/*/Dockerfile >/dev/null 2>&1; then $(BIN)/hadolint --failure-threshold warning images/*/Dockerfile; fi

bench: setup ## speed and memory ratios against baselines, as JSON under bench/results/
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(STORAGE) .pytest_cache .ruff_cache build dist lib/*.egg-info *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

-include mk/images.mk
-include mk/kind.mk
-include mk/cluster.mk

QUALITY_VENVS ?= /tmp/mlbatch-quality
QUALITY_ARGS ?=
.PHONY: bench-quality
bench-quality: setup ## mlbatch zero-config vs FLAML, AutoGluon, XGBoost on 13 public tables (own venvs; never CI; hours)
	nice -n 19 $(BIN)/python -m pip install --quiet -c constraints.txt -r bench/quality/mlbatch-requirements.txt
	@for name in flaml autogluon; do \
	  if [ ! -f $(QUALITY_VENVS)/$$name/.installed ]; then \
	    rm -rf $(QUALITY_VENVS)/$$name && $(PYTHON) -m venv $(QUALITY_VENVS)/$$name && \
	    nice -n 19 $(QUALITY_VENVS)/$$name/bin/python -m pip install --quiet -r bench/quality/$$name-requirements.txt \
	    && touch $(QUALITY_VENVS)/$$name/.installed \
	    || { rm -rf $(QUALITY_VENVS)/$$name; echo "== $$name: its environment did not install; the comparison skips it"; }; \
	  fi; \
	done
	MLBATCH_QUALITY_VENVS=$(QUALITY_VENVS) nice -n 19 $(BIN)/python bench/quality/run_quality.py $(QUALITY_ARGS)

.PHONY: bench-large
bench-large: setup ## the ETL on 50M synthetic flights, Dask engine (data in $MLBATCH_BENCH_DATA, default /tmp/mlbatch-bench)
	$(BIN)/python bench/bench_etl.py --rows 50000000 --no-csv --no-demo --variants dask

SCALE_ARGS ?=
.PHONY: bench-scale
bench-scale: setup ## cost curves of every stage at 100k, 1M, 10M synthetic rows with anchors, into docs/scale.md (never CI; an hour or more; SCALE_ARGS="--etl-sizes 50000000 --dask-cluster --data-parallel")
	$(BIN)/python bench/scale_curves.py --docs $(SCALE_ARGS)
