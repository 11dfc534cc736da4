"""CPU instructions the app spends on one request, counted by valgrind's callgrind: for
comparing two versions of the code when timings are too noisy to tell them apart (on a shared
machine the same request's time can move by a third within an hour; its instruction count
moves by about 1%).

    python -m bench.instructions [--reuse] [--contacts 20000] [--requests 30] [list count me]

A database like `make bench`'s but smaller (a page reads 100 rows whatever the office's size),
built once and kept (`--reuse` takes it again). For each request, this module runs itself
twice under callgrind, serving the request N and 4N times through the app's ASGI interface
in process (no sockets, no server, the caller being the office admin), and prints the
difference per request: start-up and warm-up cancel out. Database time is not counted; the
Python work around it is, asyncpg's included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg

from bench.run import COUNT_QUERY, LIST_QUERY, PAGE, PG_HOST, PG_PORT, ROOT

QUERIES: dict[str, tuple[str, dict[str, Any]]] = {
    "list": (LIST_QUERY, {"first": PAGE}),
    "count": (COUNT_QUERY, {}),
    "me": ("query Bench { me { id } }", {}),
}
WARMUP = 5


def _db_url(name: str) -> str:
    return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"


async def _serve(name: str, times: int, db: str) -> None:
    """The child: `times` requests (after a warm-up) through the app in this process."""
    from api.app import create_app
    from api.core.database import close_db, init_db
    from api.users.auth import issue_token

    conn = await asyncpg.connect(_db_url(db))
    try:
        meta = json.loads(await conn.fetchval("SELECT meta FROM bench_meta"))
        admin = await conn.fetchrow(
            "SELECT id, office_id, token_version FROM app_user WHERE id = $1", meta["admin_id"]
        )
    finally:
        await conn.close()
    await init_db()
    app = create_app(embedded_workers=False)
    query, variables = QUERIES[name]
    body = json.dumps({"query": query, "variables": variables}).encode()
    headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {issue_token(SimpleNamespace(**admin))}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def one() -> None:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        await app(scope, receive, send)
        answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        if sent[0]["status"] != 200 or b'"errors"' in answer:
            raise RuntimeError(f"{name}: {sent[0]['status']} {answer[:300]!r}")

    try:
        for _ in range(WARMUP + times):
            await one()
    finally:
        await close_db()


def _count(valgrind: str, name: str, times: int, db: str, env: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(  # noqa: S603 (our own argv)
            [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={Path(tmp) / 'out'}",
                sys.executable,
                "-m",
                "bench.instructions",
                "--db",
                db,
                "--child",
                name,
                str(times),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"{name} under callgrind failed:\n{result.stderr[-2000:]}")
    return int(found.group(1))


async def _prepare(args: argparse.Namespace) -> None:
    from bench.run import _build_or_reuse

    await _build_or_reuse(args, _db_url("postgres"), _db_url(args.db))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("requests_to_count", nargs="*", metavar="request", default=list(QUERIES))
    parser.add_argument("--db", default="crm_bench_instructions")
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=30, help="N (the longer run serves 4N)")
    parser.add_argument("--reuse", action="store_true", help="the database a run before built")
    parser.add_argument("--child", nargs=2, metavar=("REQUEST", "TIMES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.db):
        parser.error("--db: lower-case letters, digits and _ only")
    unknown = set(args.requests_to_count) - set(QUERIES)
    if unknown:
        parser.error(f"unknown requests {sorted(unknown)}; known: {', '.join(QUERIES)}")
    os.environ["DATABASE_URL"] = _db_url(args.db).replace("postgresql://", "postgres://", 1)
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if args.child:
        asyncio.run(_serve(args.child[0], int(args.child[1]), args.db))
        return 0
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("needs valgrind (Debian's valgrind package)", file=sys.stderr)
        return 2
    asyncio.run(_prepare(args))
    # Both runs of a request sign the same key, so their work differs in the count alone.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    short, long = args.requests, 4 * args.requests
    for name in args.requests_to_count:
        counts = [_count(valgrind, name, n, args.db, env) for n in (short, long)]
        per_request = (counts[1] - counts[0]) / (long - short)
        print(f"{name:6s} {per_request / 1e6:8.2f} million instructions per request", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
