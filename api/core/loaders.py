"""DataLoaders, one set per request (per operation on a WebSocket): lists cost a constant
number of queries whatever their size. The set in use is bound to the running task, so a
relation can be resolved without the GraphQL `info` (see `related`)."""

from __future__ import annotations

from collections import defaultdict
from contextvars import ContextVar
from functools import cached_property
from typing import Any

from strawberry.dataloader import DataLoader
from tortoise.functions import Count
from tortoise.models import Model

from api.core import database


async def _count_by(model: Any, key: str, ids: list[int], **where: Any) -> list[int]:
    """Rows of `model` per value of `key`, in the order of `ids` (0 where none)."""
    rows = (
        await model.filter(**{f"{key}__in": set(ids)}, **where)
        .group_by(key)
        .annotate(n=Count("id"))
        .values(key, "n")
    )
    counts = {row[key]: row["n"] for row in rows}
    return [counts.get(i, 0) for i in ids]


async def _by_id(model: Any, ids: list[int]) -> list[Any]:
    rows = {row.id: row for row in await database.by_id(model, list(set(ids)))}
    return [rows.get(i) for i in ids]


def now_or_later(loader: DataLoader[Any, Any], key: Any) -> Any:
    """The value if the loader already has it, else the awaitable that will. Resolvers that
    return a plain value stay on the executor's fast synchronous path."""
    future = loader.cache_map.get(key)
    if (
        future is not None
        and future.done()
        and not future.cancelled()
        and future.exception() is None
    ):
        return future.result()
    return loader.load(key)


async def prefetch(loader: DataLoader[int, Any], model: Any, ids: set[int]) -> None:
    """Load many rows into `loader` at once, with one query and none of the per-key batching
    work, so the resolvers that follow find them with `now_or_later`."""
    missing = [i for i in ids if loader.cache_map.get(i) is None]
    if missing:
        loader.prime_many({row.id: row for row in await database.by_id(model, missing)})


_current: ContextVar[Loaders] = ContextVar("loaders")


def begin() -> Loaders:
    """A fresh set of loaders for what runs next in this task (a request, an operation, a
    subscription's frame): cached rows never outlive it."""
    loaders = Loaders()
    _current.set(loaders)
    return loaders


def current() -> Loaders:
    """The loaders of the request or operation this task serves."""
    try:
        return _current.get()
    except LookupError:
        return begin()


def related(row: Model, name: str) -> Any:
    """The row that foreign key `name` of `row` points to, through the current loaders: the
    row itself when it is loaded already (a page prefetches them), else an awaitable; None
    when the key is empty. The GraphQL default resolver answers relation fields with this,
    which keeps them on Strawberry's fast path for fields without a resolver."""
    field = row._meta.fields_map[name]
    key = getattr(row, field.source_field)
    if key is None:
        return None
    return now_or_later(current().of(field.related_model), key)


class Loaders:
    """Lazily built loaders; keys are primary keys already scoped by whoever asks."""

    def of(self, model: type[Model]) -> DataLoader[int, Any]:
        """The by-id loader of `model`'s rows (for `related`)."""
        return getattr(self, _BY_ID[model.__name__])

    @cached_property
    def user(self) -> DataLoader[int, Any]:
        from api.users.models import User

        return DataLoader(lambda ids: _by_id(User, ids))

    @cached_property
    def contact(self) -> DataLoader[int, Any]:
        from api.contacts.models import Contact

        return DataLoader(lambda ids: _by_id(Contact, ids))

    @cached_property
    def company(self) -> DataLoader[int, Any]:
        from api.contacts.models import Company

        return DataLoader(lambda ids: _by_id(Company, ids))

    @cached_property
    def contact_count(self) -> DataLoader[int, int]:
        """Contacts owned per user (archived ones excluded)."""
        from api.contacts.models import Contact

        async def load(ids: list[int]) -> list[int]:
            return await _count_by(Contact, "owner_id", ids, archived=False)

        return DataLoader(load)

    @cached_property
    def status_history(self) -> DataLoader[int, list[Any]]:
        from api.contacts.models import StatusChange

        async def load(ids: list[int]) -> list[list[Any]]:
            by_contact: dict[int, list[Any]] = defaultdict(list)
            for change in await StatusChange.filter(contact_id__in=set(ids)).order_by("at", "id"):
                by_contact[change.contact_id].append(change)
            return [by_contact.get(i, []) for i in ids]

        return DataLoader(load)

    @cached_property
    def activity_count(self) -> DataLoader[int, int]:
        from api.contacts.models import Activity

        async def load(ids: list[int]) -> list[int]:
            return await _count_by(Activity, "contact_id", ids)

        return DataLoader(load)

    @cached_property
    def first_activities(self) -> DataLoader[tuple[int, int], list[Any]]:
        """The newest `n` activities of each contact, keyed (contact_id, n): one window
        query per distinct `n`, so a list of contacts with their activities stays constant."""
        from api.contacts.models import Activity
        from api.core.database import fetch

        async def load(keys: list[tuple[int, int]]) -> list[list[Any]]:
            by_size: dict[int, set[int]] = defaultdict(set)
            for contact_id, n in keys:
                by_size[n].add(contact_id)
            found: dict[tuple[int, int], list[Any]] = {}
            for n, contact_ids in by_size.items():
                id_list = sorted(contact_ids)
                marks = ", ".join(f"${i + 2}" for i in range(len(id_list)))
                picked = await fetch(
                    "SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY contact_id"
                    " ORDER BY at DESC, id DESC) AS rn FROM activity"
                    f" WHERE contact_id IN ({marks})) ranked WHERE rn <= $1",
                    n,
                    *id_list,
                )
                grouped: dict[int, list[Any]] = defaultdict(list)
                rows = await Activity.filter(id__in=[r["id"] for r in picked]).order_by(
                    "-at", "-id"
                )
                for row in rows:
                    grouped[row.contact_id].append(row)
                for contact_id in contact_ids:
                    found[(contact_id, n)] = grouped.get(contact_id, [])
            return [found[key] for key in keys]

        return DataLoader(load)

    @cached_property
    def audience(self) -> DataLoader[int, Any]:
        """Audiences by id, deleted ones included (campaigns sent to them still name them)."""
        from api.audiences.models import Audience

        return DataLoader(lambda ids: _by_id(Audience, ids))

    @cached_property
    def campaign_stats(self) -> DataLoader[int, Any]:
        """Live stats of campaigns: one aggregate query for a whole page of campaigns."""
        from api.campaigns.service import stats_of

        async def load(ids: list[int]) -> list[Any]:
            stats = await stats_of(ids)
            return [stats[i] for i in ids]

        return DataLoader(load)


# Models whose rows foreign keys reach through `related`, and their loaders.
_BY_ID = {"User": "user", "Contact": "contact", "Company": "company", "Audience": "audience"}
