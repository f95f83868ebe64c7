# doodle2anime: the two commands a new machine needs are `make run` and `make test`.
.PHONY: run test setup setup-dev bench

run: setup
	.venv/bin/doodle2anime serve

test: setup-dev
	.venv/bin/python -m pytest -q

setup:
	scripts/setup.sh serve

setup-dev:
	scripts/setup.sh dev

bench: setup-dev
	.venv/bin/python benchmarks/run_all.py
