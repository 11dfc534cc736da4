"""A real SMTP server for tests (aiosmtpd, in its own thread) that records what it receives."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    """aiosmtpd cannot listen on port 0: find a free port first."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    """Every message accepted: its recipients and headers; `refuse` maps an address to the
    SMTP reply its RCPT gets instead of 250."""

    messages: list[tuple[list[str], Any]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        reply = self.refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        headers = BytesHeaderParser().parsebytes(envelope.content)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), headers))
        return "250 Message accepted for delivery"

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def per_recipient(self) -> Counter[str]:
        with self.lock:
            return Counter(r.lower() for rcpts, _ in self.messages for r in rcpts)


@contextmanager
def smtp_server() -> Iterator[tuple[str, Received]]:
    """A running server for the block: (SMTP_URL, what it received)."""
    received = Received()
    port = free_port()
    controller = Controller(received, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}", received
    finally:
        controller.stop()
