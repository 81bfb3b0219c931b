# Quick start: `make run` (everything, on generated sample data) and `make test`.
SHELL := /bin/bash
PYTHON_BIN ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
DELTA_VERSION := 4.3.0
JARS_DIR := jars
SCALE ?= 0.01
SEED ?= 20221001
YEARS ?= 2017,2018,2019,2020
SAMPLE_DIR := data/sample/scale-$(SCALE)
INPUT ?= $(SAMPLE_DIR)
OUTPUT ?= data/output
CONFIG ?= conf

.PHONY: setup data run report test test-unit dist lint bench bench-growth clean serve serve-stop docs

# The virtualenv and the jars side by side: Maven's fetch takes its seconds under uv's.
setup:
	@$(MAKE) --no-print-directory -j2 $(VENV)/.installed $(JARS_DIR)/.fetched

# uv installs the pinned set in parallel and byte-compiles it on every core: 83 s against
# 116 s for pip from a warm cache (pip compiles module by module). Compiled now, no test
# process compiles them. The venv is made without pip (ensurepip takes 8 s): the
# interpreter's own pip installs uv into it, and builds `make dist`'s wheel.
# uv tries its cache alone first: asked, the package index answers that pyspark's sdist
# has changed, and uv then downloads and builds it again (≈30 s); the index is asked
# only when the cache lacks a pinned package (a fresh machine, a new pin).
UV_VERSION := 0.13.9
UV_INSTALL = $(VENV)/bin/uv pip install --quiet --python $(PY) --compile-bytecode -r requirements.txt
$(VENV)/.installed: requirements.txt setup.py
	$(PYTHON_BIN) -m venv --without-pip $(VENV)
	$(PYTHON_BIN) -m pip --python $(PY) install --quiet uv==$(UV_VERSION)
	$(UV_INSTALL) --offline 2>/dev/null || $(UV_INSTALL)
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	touch $@

# Delta's jars are not in the pip wheel; fetch them once with Maven so no run needs Ivy.
$(JARS_DIR)/.fetched:
	mkdir -p $(JARS_DIR)
	for artifact in io.delta:delta-spark_2.13:$(DELTA_VERSION):jar io.delta:delta-storage:$(DELTA_VERSION):jar; do \
	  mvn --batch-mode --quiet dependency:copy -Dartifact=$$artifact -DoutputDirectory=$(JARS_DIR) || exit 1; \
	done
	touch $@

data: $(SAMPLE_DIR)/.generated

$(SAMPLE_DIR)/.generated: | setup
	$(PY) jobs/generate_sample_data.py --output $(SAMPLE_DIR) --scale $(SCALE) --seed $(SEED) --config $(CONFIG)
	touch $@

# Sample data is generated only when no INPUT was given.
run: setup $(if $(filter $(SAMPLE_DIR),$(INPUT)),data)
	$(PY) jobs/run_pipeline.py --input $(INPUT) --output $(OUTPUT) --years $(YEARS) --config $(CONFIG)

# The report's figures and tables (notebooks/) from the outputs in OUTPUT, as HTML in REPORT_DIR.
REPORT_DIR ?= $(OUTPUT)/report
report: setup
	@test -d $(OUTPUT)/export/budgets || { echo "no outputs in $(OUTPUT): run 'make run' first"; exit 1; }
	mkdir -p $(REPORT_DIR)
	for notebook in notebooks/*.py; do \
	  name=$$(basename $$notebook .py); \
	  REPORT_OUTPUT=$(abspath $(OUTPUT)) REPORT_DIR=$(abspath $(REPORT_DIR)) REPORT_CONF=$(abspath $(CONFIG)) \
	    $(VENV)/bin/jupytext --quiet --to ipynb --execute --run-path . --output $(REPORT_DIR)/$$name.ipynb $$notebook \
	  && $(VENV)/bin/jupyter nbconvert --log-level WARN --to html $(REPORT_DIR)/$$name.ipynb || exit 1; \
	done
	@echo "report: $(REPORT_DIR)/*.html"

# Two test processes (pytest-xdist): on tiny data most time is driver planning and Delta
# commits, so two sessions share the cores well.
TEST_PROCESSES ?= 2
test: setup
	$(PY) -m pytest -q -n $(TEST_PROCESSES) --dist worksteal --durations=10 tests

# The unit tests alone (tests/unit/: each module on small hand-made frames), for a quick
# check while developing; `make test` runs them with the integration tests.
test-unit: setup
	$(PY) -m pytest -q -n $(TEST_PROCESSES) --dist worksteal -m unit tests

# The SQL endpoint over OUTPUT's published export tables (docs/bi.md): Spark's Thrift
# JDBC/ODBC server, on 127.0.0.1 and conf/serve.yaml's port unless HOST= or PORT= say
# otherwise. Run again while it serves: the tables are re-registered at the last
# succeeded run. `make serve-stop` stops it.
SERVE_DIR = $(OUTPUT)/_serve
serve: setup
	@test -d $(OUTPUT)/export/runs || { echo "no outputs in $(OUTPUT): run 'make run' first"; exit 1; }
	@mkdir -p $(SERVE_DIR)
	@if [ -f $(SERVE_DIR)/server.pid ] && kill -0 $$(cat $(SERVE_DIR)/server.pid) 2>/dev/null; then \
	  kill -HUP $$(cat $(SERVE_DIR)/server.pid); \
	  echo "serving already: tables re-registered at the last succeeded run (log: $(SERVE_DIR)/server.log)"; \
	else \
	  nohup $(PY) jobs/serve.py --output $(OUTPUT) --config $(CONFIG) $(if $(HOST),--host $(HOST)) \
	    $(if $(PORT),--port $(PORT)) > $(SERVE_DIR)/server.log 2>&1 & pid=$$!; \
	  for i in $$(seq 300); do \
	    grep -m1 -o "serving jdbc:hive2://[^ ]*" $(SERVE_DIR)/server.log && exit 0; \
	    kill -0 $$pid 2>/dev/null || { tail -20 $(SERVE_DIR)/server.log; exit 1; }; \
	    sleep 1; \
	  done; echo "the server did not answer within 300 s: $(SERVE_DIR)/server.log"; exit 1; \
	fi

serve-stop:
	@pid=$$(cat $(SERVE_DIR)/server.pid 2>/dev/null) || { echo "not serving $(OUTPUT)"; exit 0; }; \
	kill -TERM $$pid 2>/dev/null; while kill -0 $$pid 2>/dev/null; do sleep 0.5; done; echo "stopped"

# docs/outputs.md's column section, from conf/outputs.yaml.
docs: setup
	$(PY) jobs/describe_outputs.py --config $(CONFIG) docs/outputs.md

dist: setup
	rm -rf dist && mkdir -p dist
	$(PYTHON_BIN) -m pip --python $(PY) wheel --quiet --no-deps --wheel-dir dist .
	cd lib && zip -q -r ../dist/onderwijsscore.zip onderwijsscore -x '*__pycache__*'
	cp jobs/*.py dist/

# The whole pipeline on sample data at SCALE (e.g. `make bench SCALE=1`): wall time, peak
# memory, Spark jobs, stages and shuffle bytes per stage.
bench: setup data
	rm -rf data/bench/scale-$(SCALE)
	$(PY) jobs/benchmark.py --input $(SAMPLE_DIR) --output data/bench/scale-$(SCALE) --years $(YEARS) --config $(CONFIG)

# The cost-growth table of docs/benchmarks.md: the benchmark at SCALE=0.1, 1 and 2, one
# after the other (≈15 min here; generates the missing samples first).
bench-growth:
	for scale in 0.1 1 2; do $(MAKE) bench SCALE=$$scale || exit 1; done

lint: setup
	$(VENV)/bin/ruff check lib jobs tests notebooks
	$(VENV)/bin/ruff format --check lib jobs tests notebooks

clean:
	rm -rf $(VENV) $(JARS_DIR) data dist build *.egg-info
