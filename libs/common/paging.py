"""The list shape of the console: {"items", "total", "limit", "offset"}."""

from __future__ import annotations

from typing import Any

import msgspec

from libs.common.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


class PageQuery(msgspec.Struct, frozen=True, kw_only=True):
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
        if self.offset < 0:
            raise BadRequest("offset must not be negative")


class Page(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Any]
    total: int
    limit: int
    offset: int
