"""Parsing ids and small integers from URLs, query strings and forms, one way for every view.

Ids are bounded by the database column (INTEGER, 2**31 - 1 on PostgreSQL): a larger number is no
row, never an overflow error. Only ASCII digits count: str.isdigit() also accepts '²' and other
digits that int() refuses.
"""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

MAX_ID = 2**31 - 1


def parse_int(value, *, lo: int = 0, hi: int = MAX_ID, default: int | None = None) -> int | None:
    text = str(value).strip() if value is not None else ""
    if not text or len(text) > 12 or not (text.isascii() and text.isdigit()):
        return default
    number = int(text)
    return number if lo <= number <= hi else default


def parse_id(value, default: int | None = None) -> int | None:
    return parse_int(value, lo=1, hi=MAX_ID, default=default)


class BoundedIntConverter(IntegerConverter):
    """`<int:id>` that never matches a number the id columns cannot hold (so it is a 404, not a 500)."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)
