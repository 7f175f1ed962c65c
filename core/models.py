"""Imports every domain's models so that ``Base.metadata`` knows all tables (Alembic, tests)."""

import auth.audit.models
import auth.models  # noqa: F401
