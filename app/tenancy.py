"""Tenancy in one place: every tenant row carries (org_id, mode) and every repository query is scoped here.

Repositories subclass :class:`Repository`, whose ``select``/``new``/``get`` stamp or filter the caller's scope, so that
no call site can forget it. An object of another organization or mode is simply not found.
"""

from __future__ import annotations

import base64
import binascii
import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar, overload

from sqlalchemy import DateTime, ForeignKey, Select, String, Uuid, false, literal, select, tuple_, update
from sqlalchemy.orm import Mapped, declared_attr, mapped_column
from sqlalchemy.sql.dml import Update

from app.config import LIMITS
from app.db import Db, IdMixin, utcnow
from app.errors import InvalidInput, NotFound

MAX_PAGE = LIMITS.max_page_size


class Mode(str, enum.Enum):
    TEST = "test"
    LIVE = "live"


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose data a request may see: one organization, in one mode."""

    org_id: uuid.UUID
    mode: Mode


class TenantMixin(IdMixin):
    """Columns every tenant-owned table has; indexes lead with them."""

    @declared_attr
    def org_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False)

    mode: Mapped[str] = mapped_column(String(4), nullable=False)


M = TypeVar("M", bound=TenantMixin)


def parse_uuid(value: str | uuid.UUID) -> uuid.UUID | None:
    """IDs arrive as strings; anything that is not a UUID cannot name an object, so it is simply not found."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def id_equals(column: Any, value: str | uuid.UUID) -> Any:
    """A filter on a reference: a value that is no UUID names nothing, so the list is simply empty."""
    key = parse_uuid(value)
    return false() if key is None else column == key


def scoped_select(model: type[Any], scope: Scope, *entities: Any) -> Select[Any]:
    """``SELECT entities FROM model`` within ``scope``: the one place tenant reads are filtered."""
    return select(*(entities or (model,))).where(model.org_id == scope.org_id, model.mode == scope.mode.value)


@dataclass(frozen=True, slots=True)
class Page(Generic[M]):
    """One page of a list: its rows, whether more follow, and the cursor to ask for them (None when empty)."""

    rows: list[M]
    has_next_page: bool
    end_cursor: str | None


def encode_cursor(row: TenantMixin) -> str:
    """Opaque to clients, but simply the row's place in the (created_at, id) order, so a page never shifts when rows
    are added after it."""
    return base64.urlsafe_b64encode(f"{row.created_at.isoformat()}|{row.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, _, key = base64.urlsafe_b64decode(cursor.encode("ascii")).decode().partition("|")
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:
            raise ValueError("naive")
        return at, uuid.UUID(key)
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise InvalidInput(
            "after is not a cursor this API gave out; pass a pageInfo.endCursor.", field="after"
        ) from exc


def page_size(first: int | None) -> int:
    size = 50 if first is None else first
    if not 1 <= size <= MAX_PAGE:
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE}.", field="first")
    return size


class Repository(Generic[M]):
    """Statements for one tenant-owned model, always within ``scope``."""

    model: ClassVar[type[Any]]
    noun: ClassVar[str] = "object"  # how a NOT_FOUND message names a missing row

    def __init__(self, db: Db, scope: Scope) -> None:
        self.db = db
        self.scope = scope

    def where_scoped(self, model: type[Any]) -> tuple[Any, Any]:
        return (model.org_id == self.scope.org_id, model.mode == self.scope.mode.value)

    # ``model`` is a ClassVar, which cannot name the type parameter, so the overload says what a bare select holds.
    @overload
    def select(self) -> Select[M]: ...
    @overload
    def select(self, *entities: Any) -> Select[Any]: ...
    def select(self, *entities: Any) -> Select[Any]:
        return scoped_select(self.model, self.scope, *entities)

    def update(self) -> Update:
        return update(self.model).where(*self.where_scoped(self.model))

    def new(self, **fields: Any) -> M:
        # ids and creation times are set now, not at flush, so a new object is complete before the commit.
        fields.setdefault("id", uuid.uuid4())
        fields.setdefault("created_at", utcnow())
        row: M = self.model(org_id=self.scope.org_id, mode=self.scope.mode.value, **fields)
        self.db.add(row)
        return row

    async def get(self, id: str | uuid.UUID, *, for_update: bool = False) -> M | None:
        key = parse_uuid(id)
        if key is None:
            return None
        statement = self.select().where(self.model.id == key)
        if for_update:
            # A row read earlier in this session must be refreshed once locked, or a decision is made on stale state.
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return await self.db.scalar(statement)

    async def require(self, id: str | uuid.UUID, *, field: str, for_update: bool = False) -> M:
        """``get``, or NOT_FOUND naming ``field``: how a service reads the object a request points at."""
        row = await self.get(id, for_update=for_update)
        if row is None:
            raise NotFound(f"No {self.noun} with id {id!r}.", field=field)
        return row

    async def get_many(self, ids: Sequence[uuid.UUID]) -> list[M | None]:
        """One ``IN`` query; results in key order, ``None`` for a missing key (the dataloader contract)."""
        rows = await self.db.scalars(self.select().where(self.model.id.in_(set(ids))))
        by_id = {row.id: row for row in rows}
        return [by_id.get(key) for key in ids]

    async def children_of(self, column: Any, parent_ids: Sequence[uuid.UUID], *order_by: Any) -> list[list[M]]:
        """Rows grouped by a foreign key, in parent order, ``[]`` for a parent with none: one query for all parents."""
        statement = self.select().where(column.in_(set(parent_ids))).order_by(*(order_by or (self.model.created_at,)))
        groups: dict[uuid.UUID, list[M]] = {key: [] for key in parent_ids}
        for row in await self.db.scalars(statement):
            groups[getattr(row, column.key)].append(row)
        return [groups[key] for key in parent_ids]

    async def page(self, first: int | None, after: str | None, *where: Any, newest_first: bool = False) -> Page[M]:
        """Every list's keyset paging, in (created_at, id) order within the scope (``newest_first`` reverses it): one
        query, ``first + 1`` rows to learn whether another page follows. ``where`` narrows the list (filters, search).
        """
        size = page_size(first)
        key_columns = (self.model.created_at, self.model.id)
        order = [column.desc() for column in key_columns] if newest_first else list(key_columns)
        statement = self.select().where(*where).order_by(*order).limit(size + 1)
        if after is not None:
            at, key = decode_cursor(after)
            bound = tuple_(literal(at, DateTime(timezone=True)), literal(key, Uuid()))
            statement = statement.where(tuple_(*key_columns) < bound if newest_first else tuple_(*key_columns) > bound)
        rows = list(await self.db.scalars(statement))
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, more, encode_cursor(rows[-1]) if rows else None)
