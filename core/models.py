"""Imports every domain's models so that ``Base.metadata`` knows all tables (Alembic, tests)."""

import notifications.models  # noqa: F401
