"""The app a browser test runs under uvicorn in a process of its own.

The real ASGI app, as `crm serve` builds it, minus the embedded worker and clock: started on
the shared test database, their first tick would catch up the nightly audit of every office
earlier tests left there, and fight the test process for SQLite's write lock.
"""

from __future__ import annotations

from starlette.applications import Starlette

from api.app import create_app


def web_only() -> Starlette:
    """For `uvicorn --factory tests.web_app:web_only`."""
    return create_app(embedded_workers=False)
