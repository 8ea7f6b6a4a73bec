"""Request parameters of the ranking page and its ETag (the page of rows itself: kept.table_page)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from app.core.errors import UserError
from app.core.params import parse_id
from app.models import KIND_LABELS
from app.models.round import METHODS

# Bump when the partial's markup changes in a way a cached copy must not survive.
RENDER_REVISION = "1"
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
