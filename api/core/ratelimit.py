"""Counting failures in a fixed window: in Redis when REDIS_URL is set (shared by every web
process), in memory otherwise, and in memory too while Redis cannot be reached."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from functools import lru_cache

from redis import RedisError

from api.core.settings import get_settings

log = logging.getLogger("api.ratelimit")

# A Redis that does not answer costs a login at most this long, once: after a failure the
# counter keeps to memory for QUIET_AFTER_FAILURE before it tries Redis again.
REDIS_TIMEOUT_SECONDS = 1.0
QUIET_AFTER_FAILURE = 5.0


class MemoryCounter:
    def __init__(self) -> None:
        self._hits: dict[str, list[float]] = defaultdict(list)

    async def count(self, key: str, window: int) -> int:
        cutoff = time.monotonic() - window
        hits = [t for t in self._hits.get(key, []) if t > cutoff]
        if hits:
            self._hits[key] = hits
        else:
            self._hits.pop(key, None)
        return len(hits)

    async def hit(self, key: str, window: int) -> None:
        self._hits[key].append(time.monotonic())

    async def reset(self, key: str) -> None:
        self._hits.pop(key, None)


class RedisCounter:
    """Counts in Redis. While Redis is down, logins keep working: failures are counted in this
    process's memory instead (a warning says so), and still count once Redis is back, until
    their window has passed."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
        )
        self._fallback = MemoryCounter()
        self._quiet_until = 0.0
        self._down = False

    async def count(self, key: str, window: int) -> int:
        in_memory = await self._fallback.count(key, window)
        if self._quiet():
            return in_memory
        try:
            value = await self._redis.get(f"crm:rl:{key}")
        except RedisError as exc:
            self._failed(exc)
            return in_memory
        self._answered()
        return int(value or 0) + in_memory

    async def hit(self, key: str, window: int) -> None:
        if not self._quiet():
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.incr(f"crm:rl:{key}")
                    pipe.expire(f"crm:rl:{key}", window, nx=True)
                    await pipe.execute()
            except RedisError as exc:
                self._failed(exc)
            else:
                self._answered()
                return
        await self._fallback.hit(key, window)

    async def reset(self, key: str) -> None:
        await self._fallback.reset(key)
        if self._quiet():
            return
        try:
            await self._redis.delete(f"crm:rl:{key}")
        except RedisError as exc:
            self._failed(exc)
        else:
            self._answered()

    def _quiet(self) -> bool:
        return time.monotonic() < self._quiet_until

    def _failed(self, exc: RedisError) -> None:
        self._quiet_until = time.monotonic() + QUIET_AFTER_FAILURE
        if not self._down:
            self._down = True
            # The class only: a connection error's message may carry the URL.
            log.warning(
                "login failures counted in memory: Redis unreachable (%s)", type(exc).__name__
            )

    def _answered(self) -> None:
        if self._down:
            self._down = False
            log.info("login failures counted in Redis again")


@lru_cache
def failure_counter() -> MemoryCounter | RedisCounter:
    url = get_settings().redis_url
    return RedisCounter(url) if url else MemoryCounter()
