"""The one PageInfo every connection shares; the paging itself is ``Repository.page`` (app/tenancy.py)."""

from __future__ import annotations

from typing import Any

import strawberry

from app.tenancy import MAX_PAGE, Page


@strawberry.type(name="PageInfo", description="Where a page ends: pass endCursor as `after` for the next one.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="True when more objects follow this page.")
    end_cursor: str | None = strawberry.field(
        description="Opaque cursor of the page's last object; null when the page is empty."
    )

    @classmethod
    def of(cls, page: Page[Any]) -> PageInfo:
        return cls(has_next_page=page.has_next_page, end_cursor=page.end_cursor)


FIRST = f"How many objects to return, 1–{MAX_PAGE} (default 50); anything else is BAD_USER_INPUT on `first`."
AFTER = "The endCursor of the previous page; omit for the first page."
ARCHIVED = "Omitted, null or false: live objects only. true: archived ones only."
