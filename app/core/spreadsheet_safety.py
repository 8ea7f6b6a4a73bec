"""Formula injection: text a user typed (a title, a comment, a nominator's name) that a spreadsheet would
run as a formula once the exported file is opened — "=HYPERLINK(…)" sends the reader to a site,
"=cmd|…" once launched programs. The one rule for every XLSX and CSV the app writes.

Excel, WPS and LibreOffice treat a cell as a formula when it begins with = + - or @ (full-width forms
too, in some CJK set-ups), and skip a leading tab or carriage return before looking.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


def looks_like_formula(value) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def neutralise(value):
    """A value for a CSV (or any plain-text table): risky text gets a leading apostrophe, which
    spreadsheets show as text and do not evaluate; numbers, dates and harmless text are unchanged."""
    return "'" + value if looks_like_formula(value) else value


def neutralise_cells(cells) -> None:
    """openpyxl cells already given their values: a risky string is stored as text (openpyxl would
    otherwise write "=…" as a formula) and marked quote-prefixed, so it stays text even when someone
    edits the cell; the text itself is kept exactly as typed."""
    for cell in cells:
        if looks_like_formula(cell.value):
            cell.data_type = "s"
            cell.quotePrefix = True


def append_row(ws, values) -> None:
    """ws.append(values) with every cell of the new row neutralised."""
    ws.append(list(values))
    neutralise_cells(ws[ws.max_row])
