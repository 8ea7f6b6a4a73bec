"""Text helpers for reading filled forms: label normalization, counts such as "1.2万人次", dates such as
"二〇二四年九月三十日". Pure functions, shared by the readers and by the intake forms."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta

# One cleaning filter for the whole app: the readers clean text exactly as the forms do.
from app.core.forms import clean_line as one_line  # noqa: F401 — re-exported for the readers
from app.core.forms import clean_text  # noqa: F401

_SPACES = re.compile(r"\s+")
# Colons, stars and brackets that decorate labels ("联系人：", "*单位名称", "【活动名称】").
_LABEL_PUNCT = re.compile(r"[:：*＊【】\[\]（）()<>《》\"'“”‘’·.,，。、;；!！?？_\-—/／|｜]")


def norm_label(value) -> str:
    """"组  织  情  况  简  介：" → "组织情况简介": NFKC (full-width → half-width), no spaces, no decoration."""
    text = unicodedata.normalize("NFKC", str(value or ""))
    text = _SPACES.sub("", text)
    return _LABEL_PUNCT.sub("", text)


def norm_key(value) -> str:
    """A comparison key for names and titles: NFKC, lower case, only letters and digits."""
    text = unicodedata.normalize("NFKC", str(value or "")).lower()
    return "".join(ch for ch in text if ch.isalnum())


# --- counts -------------------------------------------------------------------------------------------

_COUNT = re.compile(r"^(?:约|共|计|合计|累计|超过|逾)?(\d+(?:\.\d+)?)(万|千)?(?:余|多)?(?:场次|人次|场|次|人|个|期|余)?(?:余|多)?$")


def parse_count(value) -> int | None:
    """"1,200" / "1200人" / "1.2万人次" / "约3000人" → int; "" → None; anything else → ValueError.

    Raises ValueError (with a Chinese message) for negatives, fractions and text that is not a count.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("请输入不小于 0 的整数")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("请输入不小于 0 的整数")
        return value
    if isinstance(value, float):
        if value < 0 or value != int(value):
            raise ValueError("请输入不小于 0 的整数")
        return int(value)
    text = unicodedata.normalize("NFKC", str(value)).strip()
    text = re.sub(r"[\s,，]", "", text)
    if not text:
        return None
    m = _COUNT.match(text)
    if not m:
        raise ValueError("请输入不小于 0 的整数")
    number, unit = m.group(1), m.group(2)
    if unit:
        scaled = float(number) * (10_000 if unit == "万" else 1_000)
        if scaled != int(scaled):
            raise ValueError("请输入不小于 0 的整数")
        return int(scaled)
    if "." in number:
        whole, frac = number.split(".")
        if frac.strip("0"):
            raise ValueError("请输入不小于 0 的整数")
        number = whole
    return int(number)


# --- dates --------------------------------------------------------------------------------------------

_CN_DIGITS = {"〇": 0, "○": 0, "零": 0, "O": 0, "Ｏ": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5,
              "六": 6, "七": 7, "八": 8, "九": 9}
_CN_DATE = re.compile(r"([〇○零OＯ一二三四五六七八九]{4})\s*年\s*([一二三四五六七八九十]{1,3})\s*月\s*"
                      r"([一二三四五六七八九十]{1,3})\s*日")
# \d matches full-width digits too, and int() reads them; separators may be full-width as well.
_DATE = re.compile(r"(\d{4})\s*[年./\-．／－]\s*(\d{1,2})\s*[月./\-．／－]\s*(\d{1,2})\s*日?")


def _cn_small(text: str) -> int:
    """一..三十一 as written in dates."""
    if text == "十":
        return 10
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[ones] if ones else 0)
    return _CN_DIGITS[text]


def _candidates(text: str):
    for m in _DATE.finditer(text):
        yield m.start(), m.end(), int(m.group(1)), int(m.group(2)), int(m.group(3))
    for m in _CN_DATE.finditer(text):
        try:
            year = int("".join(str(_CN_DIGITS[ch]) for ch in m.group(1)))
            yield m.start(), m.end(), year, _cn_small(m.group(2)), _cn_small(m.group(3))
        except KeyError:
            continue


def find_date(text: str) -> tuple[date | None, str]:
    """The first valid date in free text ("2024年9月30日", "２０２４．９．３０", "二〇二四年九月三十日"), and the
    text with that date cut out; the rest of the text is left exactly as typed."""
    text = text or ""
    for start, end, y, m, d in sorted(_candidates(text)):
        try:
            found = date(y, m, d)
        except ValueError:
            continue
        if 2000 <= found.year <= 2100:
            return found, text[:start] + text[end:]
    return None, text


def parse_date(value) -> date | None:
    """A date from a form field, a spreadsheet cell or free text; "" → None; unreadable → ValueError."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A spreadsheet serial number left in a General-formatted cell.
        if 30_000 < value < 80_000:
            return date(1899, 12, 30) + timedelta(days=int(value))
        raise ValueError("日期格式应为 2024-09-30 或 2024年9月30日")
    text = str(value).strip()
    if not text:
        return None
    found, rest = find_date(text)
    if found is None or re.sub(r"[\s日]", "", rest):
        raise ValueError("日期格式应为 2024-09-30 或 2024年9月30日")
    return found
