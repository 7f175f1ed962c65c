"""``python -m cli``: the ``chuong`` command run from a checkout (tests, benchmarks)."""

from cli.main import app

app()
