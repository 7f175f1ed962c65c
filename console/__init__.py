"""Server-rendered web console under /console (issue 7): Jinja2 + HTMX, gettext, cookie sessions."""
