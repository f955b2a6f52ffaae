# xrais developer entry points. `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch (a local wheel on the project machines). GPU users install their own CUDA
# build into .venv first and run `make demo TORCH_SPEC=` (or `make setup TORCH_SPEC=` to only set up):
# an empty TORCH_SPEC installs no PyTorch, and xrais's install keeps the one there.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev
BIN := $(VENV)/bin

.PHONY: setup browser demo test bench fuzz clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"; fi
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

# The main job on the shipped example images.
demo: setup
	$(BIN)/xrais.demo

# Debian's chromium + chromium-driver for the monitor page test (installed when missing and apt-get
# can; otherwise that one test is skipped and says why).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
		|| echo "note: could not install chromium/chromium-driver; the browser test will be skipped"; fi

test: setup browser
	$(BIN)/python -m pytest -q -ra

# Every benchmark, one after the other (figures in benchmarks/RESULTS.md); about 20 minutes on 2 cores.
bench: setup
	$(BIN)/python benchmarks/bench_conditioning.py
	$(BIN)/python benchmarks/bench_simulate.py
	$(BIN)/python benchmarks/bench_training_data.py --stream-images 480
	$(BIN)/python benchmarks/bench_inference.py --archs 18:0.25,34:0.25,50:1 --train
	$(BIN)/python benchmarks/bench_multilattice.py
	$(BIN)/python benchmarks/bench_indexing.py cache/bench_indexing.json
	$(BIN)/python benchmarks/bench_resolution.py
	$(BIN)/python benchmarks/bench_throughput.py
	$(BIN)/python benchmarks/bench_monitor.py

# The readers fuzzed at depth, outside CI: FUZZ_COUNT mutated files per format (CI reads 730 in
# all) with hypothesis seed FUZZ_SEED, one worker process, failing files kept in fuzz_output/;
# about 25 minutes on one core (benchmarks/RESULTS.md).
FUZZ_SEED ?= 0
FUZZ_COUNT ?= 10000
fuzz: setup
	$(BIN)/python scripts/fuzz_readers.py --seed $(FUZZ_SEED) --count $(FUZZ_COUNT)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
