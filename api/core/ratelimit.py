"""Counting failures in a fixed window: in Redis when REDIS_URL is set (shared by every web
process), in memory otherwise."""

from __future__ import annotations

import time
from collections import defaultdict
from functools import lru_cache

from api.core.settings import get_settings


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
    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url)

    async def count(self, key: str, window: int) -> int:
        value = await self._redis.get(f"crm:rl:{key}")
        return int(value or 0)

    async def hit(self, key: str, window: int) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(f"crm:rl:{key}")
            pipe.expire(f"crm:rl:{key}", window, nx=True)
            await pipe.execute()

    async def reset(self, key: str) -> None:
        await self._redis.delete(f"crm:rl:{key}")


@lru_cache
def failure_counter() -> MemoryCounter | RedisCounter:
    url = get_settings().redis_url
    return RedisCounter(url) if url else MemoryCounter()
