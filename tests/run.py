"""`make test`: the suite on SQLite, then on PostgreSQL + Redis when they answer.

With CI=true the PostgreSQL + Redis run is required: unreachable servers fail the run.
Extra arguments go to pytest (`python -m tests.run -k status`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

PG = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)


def answers(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=2):
            return True
    except OSError:
        return False


def pytest(label: str, env: dict[str, str], args: list[str]) -> int:
    print(f"\n=== {label} ===", flush=True)
    code = subprocess.call([sys.executable, "-m", "pytest", *args], env={**os.environ, **env})
    # Exit 5 means "no tests collected": a filter that matched nothing here is not a failure.
    return 0 if code == 5 else code


def main() -> int:
    args = sys.argv[1:]
    ci = os.environ.get("CI", "").lower() == "true"
    codes = [
        pytest("SQLite, in-process workers", {"CRM_TEST_DATABASE": "sqlite", "REDIS_URL": ""}, args)
    ]
    if answers(PG) and answers(REDIS):
        codes.append(
            pytest(
                "PostgreSQL + Redis",
                {"CRM_TEST_DATABASE": "postgres", "REDIS_URL": "redis://127.0.0.1:6379/15"},
                args,
            )
        )
    elif ci:
        print("PostgreSQL or Redis is not answering, and CI=true requires them", file=sys.stderr)
        codes.append(1)
    else:
        print(
            "\nPostgreSQL or Redis is not answering: their run was skipped (required with CI=true)"
        )
    return next((c for c in codes if c), 0)


if __name__ == "__main__":
    sys.exit(main())
