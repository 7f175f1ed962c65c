"""The Alembic configuration, built in code so that ``chuong migrate`` works from the installed
wheel: the migration scripts ship inside the ``cli`` package (``cli/migrations``, package data)
and are found through the package, not through a checkout's ``alembic.ini``.

The repository's ``alembic.ini`` names the same location for developers who run ``alembic``
directly (``alembic revision --autogenerate``)."""

from __future__ import annotations

from alembic.config import Config

SCRIPT_LOCATION = "cli:migrations"


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if database_url:
        # migrations/env.py prefers it to the settings' CHUONG_DATABASE_URL.
        config.attributes["database_url"] = database_url
    return config
