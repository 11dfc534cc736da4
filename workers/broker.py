"""The Dramatiq broker: Redis when REDIS_URL is set, otherwise an in-memory broker whose
worker runs inside the API process on the web server's own event loop."""

from __future__ import annotations

import asyncio
import logging

import dramatiq
from dramatiq.asyncio import EventLoopThread, set_event_loop_thread
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO, Middleware

from api.core.settings import get_settings

log = logging.getLogger("workers")

_broker: dramatiq.Broker | None = None


class TortoiseSetup(Middleware):
    """Connects the ORM on the worker's event loop once the worker has booted."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        from dramatiq.asyncio import get_event_loop_thread

        from api.core.database import init_db

        get_event_loop_thread().run_coroutine(init_db())

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        from dramatiq.asyncio import get_event_loop_thread

        from api.core.database import close_db

        get_event_loop_thread().run_coroutine(close_db())


def setup_broker() -> dramatiq.Broker:
    """Create and install the broker once per process."""
    global _broker
    if _broker is not None:
        return _broker
    url = get_settings().redis_url
    if url:
        from dramatiq.brokers.redis import RedisBroker

        broker: dramatiq.Broker = RedisBroker(url=url)
        broker.add_middleware(AsyncIO())
        broker.add_middleware(TortoiseSetup())
    else:
        broker = StubBroker()
    dramatiq.set_broker(broker)
    _broker = broker
    return broker


def uses_redis() -> bool:
    return bool(get_settings().redis_url)


class EmbeddedWorker:
    """A Dramatiq worker inside the API process, running async actors on the web loop
    (a second loop would fight the web loop for the ORM's connections)."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        self.worker: dramatiq.Worker | None = None

    def start(self) -> None:
        loop_thread = EventLoopThread(log)
        loop_thread.loop = asyncio.get_running_loop()
        set_event_loop_thread(loop_thread)
        self.broker.emit_after("process_boot")
        self.worker = dramatiq.Worker(self.broker, worker_threads=2, worker_timeout=100)
        self.worker.start()

    async def stop(self) -> None:
        import anyio

        if self.worker is not None:
            await anyio.to_thread.run_sync(self.worker.stop)
        set_event_loop_thread(None)
