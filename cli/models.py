"""The model registry: imports every domain's models so that ``Base.metadata`` knows all tables.

Alembic's ``cli/migrations/env.py`` imports it (``chuong migrate`` and the tests' template
database both run it). It lives in the shipped outer layer, not in ``core`` (which imports no
domain); the migration scripts ship beside it as package data (``cli/migration_config.py``)."""

# ruff: noqa: F401  (imported for their side effect: each module adds its tables to Base.metadata)

import auth.audit.models
import auth.models
import core.maintenance
import devices.models
import inbox.models
import news.models
import notifications.models
import notifications.sms.models
import tracking.models
