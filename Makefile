.PHONY: run test setup lint format typecheck migrate bench

run:        ## set up everything and run API + worker + emulator
	scripts/dev.sh run

test:       ## ruff, mypy and the whole test suite on real PostgreSQL and Redis
	scripts/dev.sh test

setup:
	scripts/dev.sh setup

lint:
	.venv/bin/ruff check .

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

typecheck:
	.venv/bin/mypy .

migrate:
	.venv/bin/chuong migrate
