"""The outer layer (composition root): the ``chuong`` command (``cli.main``) and the model registry
that Alembic reads (``cli.models``). It may import every package; none imports it."""
