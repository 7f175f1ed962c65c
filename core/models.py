"""Imports every domain's models so that ``Base.metadata`` knows all tables (Alembic, tests)."""

import auth.models  # noqa: F401
import inbox.models  # noqa: F401
import news.models  # noqa: F401
import notifications.models  # noqa: F401
import tracking.models  # noqa: F401
from notifications.sms import models as _sms_models  # noqa: F401
