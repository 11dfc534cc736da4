"""Helpers shared by the fuzz and property tests: how much to run (CI size by default, more
under `make fuzz`), what every answer must look like whatever was asked, and walks over
answers that find the strings and the objects of each kind they carry."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, settings

from tests.conftest import assert_clean

# Every code an error may carry (R20, plus persisted queries and a database outage). Anything
# else, an INTERNAL_SERVER_ERROR above all, is a bug the fuzzer found.
KNOWN_CODES = frozenset(
    {
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "NOT_FOUND",
        "BAD_USER_INPUT",
        "CONFLICT",
        "RATE_LIMITED",
        "PERSISTED_QUERY_NOT_FOUND",
        "SERVICE_UNAVAILABLE",
    }
)

# `make fuzz` sets FUZZ_SCALE: every test here runs that many times its everyday examples.
FUZZ_SCALE_ENV = "FUZZ_SCALE"


def scale() -> int:
    return max(1, int(os.environ.get(FUZZ_SCALE_ENV) or 1))


def long_run() -> bool:
    return scale() > 1


def hypothesis_settings(ci_examples: int, **overrides: Any) -> settings:
    """Settings for a test run over the shared test database. The everyday run is
    derandomized: it explores the same inputs every time, so a failure reproduces, and
    reports a failure as found, since shrinking one that goes through the database can take
    minutes. A long run (FUZZ_SCALE) explores new inputs each time (pytest's
    --hypothesis-seed pins them) and shrinks what fails. Nothing is stored between runs:
    each one's database state is different anyway."""
    phases = list(Phase) if long_run() else [p for p in Phase if p != Phase.shrink]
    return settings(
        max_examples=ci_examples * scale(),
        phases=phases,
        derandomize=not long_run(),
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
        **overrides,
    )


def check_answer(response: httpx.Response, sent: str) -> dict[str, Any]:
    """What any answer of /graphql must be, whatever was sent (R20): no server error, a JSON
    body with `data` or `errors`, every error with a known code and no internals shown."""
    context = f"\n--- sent ---\n{sent}\n--- answered {response.status_code} ---\n{response.text}"
    assert response.status_code < 500, context
    try:
        body = response.json()
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON{context}") from None
    assert isinstance(body, dict), context
    assert "data" in body or body.get("errors"), context
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert code in KNOWN_CODES, f"unknown code {code!r}{context}"
    try:
        assert_clean(body)
    except AssertionError as exc:
        raise AssertionError(f"{exc}{context}") from None
    return body


# --- walks over an answer ------------------------------------------------------------------


def strings(value: Any, *, skip: str | None = None) -> Iterator[str]:
    """Every string an answer carries, values and error messages alike; `skip` leaves out
    what lies under keys of that name."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key != skip:
                yield from strings(item, skip=skip)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item, skip=skip)


def kind_of(global_id: Any) -> tuple[str, int] | None:
    """(kind, pk) behind a global id, or None for a string that is not one."""
    if not isinstance(global_id, str) or not global_id:
        return None
    try:
        raw = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
        kind, _, pk = raw.partition(":")
        return kind, int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def nodes_with_paths(value: Any, kind: str, path: tuple[Any, ...] = ()) -> Iterator[Any]:
    """(path, object) for each object of an answer whose `id` is a global id of `kind`."""
    if isinstance(value, dict):
        found = kind_of(value.get("id"))
        if found is not None and found[0] == kind:
            yield path, value
        for key, item in value.items():
            yield from nodes_with_paths(item, kind, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from nodes_with_paths(item, kind, (*path, index))


def model_named(name: str) -> Any:
    """The ORM model whose class is `name` (ids name their kind after it), or None."""
    from tortoise import Tortoise

    apps = Tortoise.apps
    models = apps.get_models_iterable() if apps is not None else ()
    return next((model for model in models if model.__name__ == name), None)
