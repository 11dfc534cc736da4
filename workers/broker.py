"""The Dramatiq broker: Redis when REDIS_URL is set, otherwise an in-memory broker whose
worker runs inside the API process on the web server's own event loop."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import dramatiq
from dramatiq.asyncio import EventLoopThread, set_event_loop_thread
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO, Middleware

from api.core import metrics
from api.core.logs import REQUEST_ID
from api.core.settings import get_settings

log = logging.getLogger("workers")

_broker: dramatiq.Broker | None = None


class TortoiseSetup(Middleware):
    """Connects the ORM on the worker's event loop before the worker takes any message
    (after_worker_boot would be too late: consumers already run then). Added after AsyncIO,
    whose before_worker_boot has started that loop by now."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        from dramatiq.asyncio import get_event_loop_thread

        from api.core.database import init_db

        get_event_loop_thread().run_coroutine(init_db())

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        from dramatiq.asyncio import get_event_loop_thread

        from api.core.database import close_db

        get_event_loop_thread().run_coroutine(close_db())


class LogSetup(Middleware):
    """A worker process started by spawning (not forking) inherits no logging set-up from
    `crm worker` (which tells Dramatiq to make none): it makes the same one."""

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        if not logging.getLogger().handlers:
            from api.core.logs import setup_logging

            settings = get_settings()
            setup_logging(settings.log_level, settings.log_format)


class RequestIds(Middleware):
    """Carries the request id of the code that enqueues a message (an HTTP request, or an
    actor carrying one itself) in the message, and restores it while the actor runs, so
    the worker's log lines name the request they come from."""

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int | None) -> None:
        request_id = REQUEST_ID.get()
        if request_id is not None:
            message.options.setdefault("request_id", request_id)

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        # Set in the worker thread; the actor's coroutine, scheduled from it, inherits it.
        REQUEST_ID.set(message.options.get("request_id"))

    def after_process_message(self, broker: dramatiq.Broker, message: Any, **_: Any) -> None:
        REQUEST_ID.set(None)

    after_skip_message = after_process_message


class ActorMetrics(Middleware):
    """Times every actor run and counts the failed ones (api.core.metrics)."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._started[message.message_id] = time.perf_counter()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        started = self._started.pop(message.message_id, None)
        if started is None:
            return
        # A requested Retry (temporary mail failures) is the actor's plan, not a failure.
        failed = exception is not None and not isinstance(exception, dramatiq.Retry)
        metrics.observe_actor(message.actor_name, time.perf_counter() - started, failed=failed)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._started.pop(message.message_id, None)


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
        broker.add_middleware(LogSetup())
    else:
        broker = StubBroker()
    broker.add_middleware(RequestIds())
    broker.add_middleware(ActorMetrics())
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
