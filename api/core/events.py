"""Progress events: "this campaign, import or export changed", from whoever does the work to
whoever watches it (the GraphQL subscriptions).

An event is a kind and an id, nothing more: a subscriber re-reads the object through the
services, as its caller, so nothing leaks through the channel and a forged or stray event
costs one read. With REDIS_URL, events go through one Redis pub/sub channel, so a worker
process reaches every web process; without it the workers run inside the web process and
events stay in process. Events are hints, not a log: `follow` also re-reads every
SUBSCRIPTION_POLL_SECONDS, so a lost event delays a subscriber, it never stalls one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from api.core.settings import get_settings

if TYPE_CHECKING:
    import redis.asyncio as redis


log = logging.getLogger("api.events")

T = TypeVar("T")
Key = tuple[str, int]

# A subscriber gets at most one frame per this many seconds: a burst of events is one frame.
MIN_INTERVAL = 0.1
# A publish waits no longer than this for Redis; after a failure Redis is left alone for
# QUIET_AFTER_FAILURE, so a Redis that is down costs the work reported on one short wait.
PUBLISH_TIMEOUT = 0.5
QUIET_AFTER_FAILURE = 5.0
# How long `listen` waits for the Redis subscription to be confirmed before going on with
# polling alone (the reader keeps trying in the background).
SUBSCRIBE_TIMEOUT = 2.0


class Listener:
    """One subscriber's wake-up flag for one object, set by events from any thread."""

    def __init__(self, key: Key) -> None:
        self.key = key
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def wake(self) -> None:
        try:
            same_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            self._event.set()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, seconds: float) -> bool:
        """True when an event came within `seconds`."""
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        return True

    def clear(self) -> None:
        self._event.clear()


class _Hub:
    """This process's listeners, by object."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[Key, set[Listener]] = {}

    def add(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.setdefault(listener.key, set()).add(listener)

    def remove(self, listener: Listener) -> None:
        with self._lock:
            found = self._listeners.get(listener.key)
            if found is not None:
                found.discard(listener)
                if not found:
                    del self._listeners[listener.key]

    def notify(self, key: Key) -> None:
        with self._lock:
            listeners = list(self._listeners.get(key, ()))
        for listener in listeners:
            listener.wake()

    def notify_all(self) -> None:
        with self._lock:
            listeners = [one for found in self._listeners.values() for one in found]
        for listener in listeners:
            listener.wake()


_hub = _Hub()


class _RedisLink:
    """Redis for one event loop (a client belongs to the loop it was made on): a client for
    PUBLISH and, while anyone on this loop listens, one reader of the channel."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self.url = url
        self.client: redis.Redis = redis.Redis.from_url(
            url, socket_connect_timeout=PUBLISH_TIMEOUT, socket_timeout=PUBLISH_TIMEOUT
        )
        # Pub/sub ignores Redis's numbered databases: the channel is named after this one, so
        # two deployments (or test runs) sharing a server keep to their own.
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        self.channel = f"crm:progress:{db}"
        self.listeners = 0
        self.reader: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self.quiet_until = 0.0

    def start_reader(self) -> None:
        if self.reader is None or self.reader.done():
            # Each reader says on an event of its own when it is subscribed, so one that is
            # stopping never speaks for the one that replaces it.
            self.subscribed = asyncio.Event()
            self.reader = asyncio.create_task(self._read(self.subscribed), name="progress-events")

    async def stop_reader(self) -> None:
        reader, self.reader = self.reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _read(self, subscribed: asyncio.Event) -> None:
        import redis.asyncio as redis

        # Its own client: reading waits indefinitely, beyond the publisher's short timeouts.
        client = redis.Redis.from_url(self.url, socket_connect_timeout=SUBSCRIBE_TIMEOUT)
        backoff = 0.5
        lost = False
        try:
            while True:
                pubsub = client.pubsub()
                try:
                    await pubsub.subscribe(self.channel)
                    async for message in pubsub.listen():
                        if message["type"] == "subscribe":
                            subscribed.set()
                            backoff = 0.5
                            if lost:  # events sent while the link was down: everyone re-reads
                                _hub.notify_all()
                        elif message["type"] == "message":
                            key = _parse(message["data"])
                            if key is not None:
                                _hub.notify(key)
                except Exception as exc:
                    log.warning("progress events: Redis subscription lost (%s); retrying", exc)
                finally:
                    subscribed.clear()
                    lost = True
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def publish(self, key: Key) -> None:
        now = time.monotonic()
        if now < self.quiet_until:
            return
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await self.client.publish(self.channel, f"{key[0]}:{key[1]}")
        except Exception as exc:
            self.quiet_until = now + QUIET_AFTER_FAILURE
            log.warning("progress event for %s %s not published: %s", key[0], key[1], exc)


_links: dict[int, tuple[asyncio.AbstractEventLoop, _RedisLink]] = {}


def _link() -> _RedisLink | None:
    """This loop's Redis link with REDIS_URL set, else None (events stay in process)."""
    url = get_settings().redis_url
    if not url:
        return None
    loop = asyncio.get_running_loop()
    found = _links.get(id(loop))
    if found is not None and found[0] is loop and found[1].url == url:
        return found[1]
    # Links of loops that are gone (their clients cannot be used any more) are dropped.
    for loop_id, (other, _) in list(_links.items()):
        if other.is_closed():
            del _links[loop_id]
    link = _RedisLink(url)
    _links[id(loop)] = (loop, link)
    return link


def _parse(data: bytes | str) -> Key | None:
    text = data.decode() if isinstance(data, bytes) else data
    kind, _, object_id = text.partition(":")
    try:
        return kind, int(object_id)
    except ValueError:
        return None


async def publish(kind: str, object_id: int) -> None:
    """Tell the subscribers of `kind` `object_id` (Campaign, ImportJob, ExportJob) that it
    changed; call it once the change is committed. Never raises and never waits long: the
    work being reported on matters more than the report."""
    try:
        link = _link()
        if link is None:
            _hub.notify((kind, int(object_id)))
        else:
            await link.publish((kind, int(object_id)))
    except Exception:
        log.warning("progress event for %s %s not published", kind, object_id, exc_info=True)


@contextlib.asynccontextmanager
async def listen(kind: str, object_id: int) -> AsyncIterator[Listener]:
    """A listener for the events of one object, for the block's duration. It is in place
    (with Redis: the channel subscribed) when the block starts, so reading the object first
    thing inside the block misses no change."""
    listener = Listener((kind, int(object_id)))
    _hub.add(listener)
    link = None
    try:
        link = _link()
        if link is not None:
            link.listeners += 1
            link.start_reader()
            try:
                async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                    await link.subscribed.wait()
            except TimeoutError:
                log.warning("progress events: Redis not subscribed yet; polling meanwhile")
    except Exception:
        log.warning("progress events unavailable; polling only", exc_info=True)
    try:
        yield listener
    finally:
        _hub.remove(listener)
        if link is not None:
            link.listeners -= 1
            if link.listeners <= 0:
                await link.stop_reader()


async def close() -> None:
    """Close this loop's Redis link (at shutdown)."""
    found = _links.pop(id(asyncio.get_running_loop()), None)
    if found is not None:
        await found[1].stop_reader()
        with contextlib.suppress(Exception):
            await found[1].client.aclose()


async def follow(
    kind: str,
    object_id: int,
    read: Callable[[], Awaitable[T]],
    finished: Callable[[T], bool],
) -> AsyncGenerator[T, None]:
    """`read()` at once, then again after each event for the object and at least every
    SUBSCRIPTION_POLL_SECONDS, at most once per MIN_INTERVAL (a burst of events is one
    read); ends after a value `finished` accepts. What `read` raises ends the stream."""
    loop = asyncio.get_running_loop()
    poll = get_settings().subscription_poll_seconds
    async with listen(kind, object_id) as listener:
        value = await read()
        while True:
            yield value
            if finished(value):
                return
            shown_at = loop.time()
            await listener.wait(poll)
            pause = MIN_INTERVAL - (loop.time() - shown_at)
            if pause > 0:
                await asyncio.sleep(pause)
            # Cleared before reading: an event during the read brings another read.
            listener.clear()
            value = await read()


__all__ = ["Listener", "close", "follow", "listen", "publish"]
