"""Where to go after signing in: only a path on this site.

A `next` that a browser would read as another site is an open redirect (a phishing aid: the link
starts with our address, the password is typed on our page, then the user lands on a look-alike).
Browsers are lenient in ways a plain `startswith("/")` misses: the WHATWG URL parser drops tabs and
newlines anywhere, trims leading control characters and spaces, and reads a backslash as a slash in
http(s) URLs — so `/\\evil.com`, `/\\t/evil.com` and ` //evil.com` all leave the site. Proxies and
frameworks may also percent-decode once more before the browser sees the value, so the decoded forms
(`/%5Cevil.com`, `%2F%2Fevil.com`, `/%09/evil.com`) must be safe too.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MAX_LENGTH = 2000
_DECODE_ROUNDS = 3
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EDGE = "".join(chr(c) for c in range(0x21))  # C0 controls and space, what the URL parser trims


def _as_browser_reads(text: str) -> str:
    return _TAB_NEWLINE.sub("", text).strip(_EDGE).replace("\\", "/")


def _is_local_path(text: str) -> bool:
    seen = _as_browser_reads(text)
    if not seen.startswith("/") or seen.startswith("//"):
        return False
    if _CONTROL.search(seen):
        return False
    parts = urlsplit(seen)
    return not parts.scheme and not parts.netloc


def safe_next(target: str | None) -> str | None:
    """`target` when it can only be a path on this site (in every decoded form), else None."""
    if not target or len(target) > MAX_LENGTH:
        return None
    # Anything a browser would silently rewrite is refused outright rather than repaired: a real
    # link from our own pages never contains control characters, spaces at its ends or backslashes.
    if _CONTROL.search(target) or target != target.strip() or "\\" in target:
        return None
    text = target
    for _ in range(_DECODE_ROUNDS):
        if not _is_local_path(text):
            return None
        decoded = unquote(text)
        if decoded == text:
            return target
        text = decoded
    # Still changing after several decodings: nobody builds such a link by accident.
    return None
