"""A page of a long list: which page, how many, and the page links to show (1 … 4 5 [6] 7 8 … 70)."""

from __future__ import annotations

import math
from dataclasses import dataclass


def page_numbers(page: int, pages: int, around: int = 2) -> list[int | None]:
    """The page links to show around `page` (None marks a gap)."""
    keep = {1, pages, *range(page - around, page + around + 1)}
    out: list[int | None] = []
    for n in sorted(k for k in keep if 1 <= k <= pages):
        if out and out[-1] is not None and n - out[-1] > 1:
            out.append(None)
        out.append(n)
    return out


@dataclass(frozen=True)
class Pager:
    page: int
    pages: int
    page_size: int
    total: int

    @classmethod
    def of(cls, total: int, page: int | None, page_size: int) -> Pager:
        pages = max(1, math.ceil(total / page_size))
        return cls(min(max(page or 1, 1), pages), pages, page_size, total)

    @property
    def query_page(self) -> int | None:
        """The page as a URL's `page` argument: none for the first (its URL is the list's own)."""
        return self.page if self.page > 1 else None

    @property
    def start(self) -> int:
        return (self.page - 1) * self.page_size

    def slice(self, items: list) -> list:
        return items[self.start:self.start + self.page_size]

    def page_of(self, index: int) -> int:
        """The page holding the item at 0-based `index`."""
        return index // self.page_size + 1

    def page_numbers(self, around: int = 2) -> list[int | None]:
        return page_numbers(self.page, self.pages, around)
