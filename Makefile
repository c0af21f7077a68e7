# Shortcuts for the README's commands (which work without make too).
.PHONY: run test notebooks lint bench bench-lookup
run:
	bash .ci/bootstrap.sh run
test:
	bash .ci/bootstrap.sh test
notebooks:
	bash .ci/bootstrap.sh notebooks
lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
bench:
	.venv/bin/python bench/load.py
bench-lookup:
	command -v wrk >/dev/null || apt-get install -y wrk
	.venv/bin/python bench/lookup.py
