"""Request parameters of the ranking page, its ETag, and the page of rows to show (filters, paging, cut line).

Filtering and paging only choose which already-ranked rows to display: ranks always come from the whole
category (ranking.compute), so a filtered view still shows each nomination's real place.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from app.core.errors import UserError
from app.core.params import parse_id
from app.models import KIND_LABELS
from app.models.round import METHODS
from app.ranking.engine import RankRow

# Bump when the partial's markup changes in a way a cached copy must not survive.
RENDER_REVISION = "1"
KIND_ORDER = {kind: i for i, kind in enumerate(KIND_LABELS)}
TRUE_VALUES = ("1", "on", "true", "yes")


@dataclass(frozen=True)
class Params:
    method: str
    method_given: bool
    drafts: bool
    kind: str
    nominator: int | None
    page: int

    @classmethod
    def parse(cls, args, default_method: str) -> Params:
        # A plain dict: MultiDict.get builds (and swallows) an exception per missing key, and this runs
        # on every poll, 304 or not.
        args = args.to_dict() if hasattr(args, "to_dict") else dict(args)
        method = (args.get("method") or "").strip()
        if method and method not in METHODS:
            raise UserError("未知的排名方法。", status=400)
        kind = (args.get("kind") or "").strip()
        if kind and kind not in KIND_LABELS:
            raise UserError("未知的推荐单位类型。", status=400)
        nominator = _positive_int(args.get("nominator"), "推荐单位")
        page = _positive_int(args.get("page"), "页码") or 1
        return cls(method=method or default_method, method_given=bool(method),
                   drafts=(args.get("drafts") or "").lower() in TRUE_VALUES,
                   kind=kind, nominator=nominator, page=page)

    def query(self, **override) -> dict:
        """Query-string arguments reproducing this view (defaults left out), for url_for."""
        values = {"method": self.method if self.method_given else None, "drafts": "1" if self.drafts else None,
                  "kind": self.kind or None, "nominator": self.nominator, "page": self.page if self.page > 1 else None}
        values.update(override)
        return {k: v for k, v in values.items() if v not in (None, "")}



def _positive_int(value, label: str) -> int | None:
    if value in (None, ""):
        return None
    number = parse_id(value)
    if number is None:
        raise UserError(f"{label}参数无效。", status=400)
    return number


def fingerprint(query_string: bytes | str, *context) -> str:
    """Everything the fragment depends on besides the ranking data: the query string as requested (not
    parsed: an idle poll should not pay for parsing; an equivalent but differently spelled query merely
    misses once) and the round settings / config passed as context."""
    if isinstance(query_string, str):
        query_string = query_string.encode()
    digest = hashlib.sha1(query_string, usedforsecurity=False)
    digest.update("|".join(str(c) for c in (RENDER_REVISION, *context)).encode())
    return digest.hexdigest()[:12]


def etag(round_id: int, category: str, version: int, fingerprint: str, user_id: int) -> str:
    """Computed from the ranking version, never from the ranking itself: a match costs no aggregate query."""
    return f"{round_id}-{category}-{version}-{fingerprint}-{user_id}"


def matches(if_none_match: str | None, tag: str) -> bool:
    """Does an If-None-Match header name this (unquoted) tag? Weak comparison, as RFC 9110 specifies for
    If-None-Match. Quotes delimit every tag, so a substring test is an exact token test."""
    if not if_none_match:
        return False
    return if_none_match.strip() == "*" or f'"{tag}"' in if_none_match


@dataclass(frozen=True)
class NominatorOption:
    id: int
    name: str
    kind: str


@dataclass(frozen=True)
class TablePage:
    rows: list[RankRow]
    total: int  # rows after filtering
    category_total: int
    page: int
    pages: int
    page_size: int
    first_index: int  # 0-based index of rows[0] in the filtered list
    slots: int
    cut_id: int | None  # the last row inside the award slots, when rows follow it
    cut_page: int | None
    nominators: list[NominatorOption]  # every nominator of the category, in official order

    def page_numbers(self, around: int = 2) -> list[int | None]:
        """1 … 4 5 [6] 7 8 … 70 (None marks a gap)."""
        keep = {1, self.pages, *range(self.page - around, self.page + around + 1)}
        out: list[int | None] = []
        for n in sorted(k for k in keep if 1 <= k <= self.pages):
            if out and out[-1] is not None and n - out[-1] > 1:
                out.append(None)
            out.append(n)
        return out


def build(rows: list[RankRow], params: Params, slots: int, page_size: int) -> TablePage:
    seen: dict[int, NominatorOption] = {}
    positions: dict[int, int] = {}
    for r in rows:
        if r.nominator_id not in seen:
            seen[r.nominator_id] = NominatorOption(r.nominator_id, r.nominator_name, r.nominator_kind)
            positions[r.nominator_id] = r.nominator_position
    options = sorted(seen.values(), key=lambda o: (KIND_ORDER.get(o.kind, 9), positions[o.id], o.id))

    filtered = [r for r in rows if (not params.kind or r.nominator_kind == params.kind)
                and (params.nominator is None or r.nominator_id == params.nominator)]
    cut_index = None
    for i, r in enumerate(filtered):
        if r.rank <= slots:
            cut_index = i
    if cut_index is not None and cut_index + 1 >= len(filtered):
        cut_index = None  # nobody below the line in this view: nothing to draw
    pages = max(1, math.ceil(len(filtered) / page_size))
    page = min(params.page, pages)
    start = (page - 1) * page_size
    return TablePage(
        rows=filtered[start:start + page_size], total=len(filtered), category_total=len(rows), page=page,
        pages=pages, page_size=page_size, first_index=start, slots=slots,
        cut_id=filtered[cut_index].nomination_id if cut_index is not None else None,
        cut_page=cut_index // page_size + 1 if cut_index is not None else None,
        nominators=options,
    )
