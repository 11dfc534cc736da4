"""Dramatiq actors and the clock. Importing this package configures the broker, so
`dramatiq workers` (what `crm worker` runs) finds both the broker and the actors."""

from workers.broker import setup_broker

broker = setup_broker()

from workers import audit  # noqa: E402  (actors register with the broker set up above)
from workers import campaigns as campaigns  # noqa: E402
from workers import exports as exports  # noqa: E402
from workers import imports as imports  # noqa: E402

__all__ = ["audit", "broker"]
