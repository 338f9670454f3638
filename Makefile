# The README's two commands: `make bench` (main job on the embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser bench sweep test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[openvino,onnxruntime,dev]"
	touch $(STAMP)

bench: setup
	$(BIN)/bench run

# The documented default compression sweep (README "Compression frontier"): l1 x {0.3,0.5,0.7,0.8} x {fp32,int8}.
sweep: setup
	$(BIN)/bench sweep --set compress.finetune_epochs=1 --set compress.qat_epochs=1

test: setup browser
	$(BIN)/python -m pytest -q

# Headless Chromium for the HTML-report test (Debian's package; needs root). Without it that one test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium is not installed: the HTML report browser test will skip"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs .bench-cache
