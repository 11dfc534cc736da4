"""A PostgreSQL wire-protocol proxy that records every statement its clients run.

The app under count connects to this proxy instead of PostgreSQL (DATABASE_URL points here);
the proxy forwards bytes both ways unchanged and, on the client side, reads the protocol's
message frames: each `Execute` (extended protocol, what asyncpg uses for queries) and each
simple `Query` (asyncpg's pool-release reset, BEGIN/COMMIT) is one statement sent to the
server. `Parse` (a statement prepared, so not found in asyncpg's statement cache) is
recorded too, and with `Bind` maps a portal back to its SQL text. It runs on its own thread and
event loop, so a synchronous caller can read the counters between two requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


def _cstrings(body: bytes, n: int) -> list[str]:
    parts = body.split(b"\0", n)
    return [p.decode("utf-8", "replace") for p in parts[:n]]


class StatementRecorder:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        # (kind, sql): "execute", "simple" (a simple-protocol query) or "parse" (a prepare)
        self._log: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # --- reading, from any thread -------------------------------------------------------
    def take(self) -> list[tuple[str, str]]:
        """The statements recorded since the last call."""
        with self._lock:
            out, self._log = self._log, []
        return out

    # --- life cycle -------------------------------------------------------------------------
    def start(self) -> int:
        self._thread = threading.Thread(target=self._run, name="pgwire", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the statement-recording proxy did not start")
        return self.port

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    # --- one client connection ------------------------------------------------------------
    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        sreader, swriter = await asyncio.open_connection(*self.upstream)
        back = asyncio.create_task(self._pump(sreader, cwriter))
        try:
            await self._client_to_server(creader, cwriter, swriter)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            back.cancel()
            for w in (swriter, cwriter):
                with contextlib.suppress(Exception):
                    w.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()

    async def _client_to_server(
        self,
        reader: asyncio.StreamReader,
        cwriter: asyncio.StreamWriter,
        swriter: asyncio.StreamWriter,
    ) -> None:
        # Start-up messages have no type byte; SSL/GSS requests are refused here, so the
        # rest of the conversation stays readable.
        while True:
            head = await reader.readexactly(4)
            (length,) = struct.unpack("!I", head)
            body = await reader.readexactly(length - 4)
            code = struct.unpack("!I", body[:4])[0]
            if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                cwriter.write(b"N")
                await cwriter.drain()
                continue
            swriter.write(head + body)
            await swriter.drain()
            break
        statements: dict[str, str] = {}
        portals: dict[str, str] = {}
        while True:
            head = await reader.readexactly(5)
            kind = head[:1]
            (length,) = struct.unpack("!I", head[1:])
            body = await reader.readexactly(length - 4)
            if kind == b"P":
                name, sql = _cstrings(body, 2)
                statements[name] = sql
                with self._lock:
                    self._log.append(("parse", sql))
            elif kind == b"B":
                portal, name = _cstrings(body, 2)
                portals[portal] = statements.get(name, "?")
            elif kind == b"E":
                (portal,) = _cstrings(body, 1)
                with self._lock:
                    self._log.append(("execute", portals.get(portal, "?")))
            elif kind == b"Q":
                (sql,) = _cstrings(body, 1)
                with self._lock:
                    self._log.append(("simple", sql))
            swriter.write(head + body)
            if kind in (b"S", b"H", b"Q", b"X", b"c", b"f"):
                await swriter.drain()
            if kind == b"X":
                return
