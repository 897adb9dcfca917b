"""The connection shape every list shares: ``{ nodes, pageInfo { hasNextPage endCursor } }``."""

from __future__ import annotations

import strawberry


@strawberry.type(description="Where a page ends and whether another follows.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="Whether a next page exists (pass endCursor as `after`).")
    end_cursor: str | None = strawberry.field(description="The cursor of this page's last node; null when empty.")
