"""Read filled 附件1/附件2 forms from .docx files (python-docx).

Real forms are messy: merged cells (python-docx returns a merged cell once per grid column it spans, and a
vertically merged one again in every row it covers), labels typed with spaces ("联 系 人", "组  织  情  况
简  介") or full-width colons, the value in the next cell, in the same cell after a colon, or in the row
below (the 简介 box). Several forms may sit in one document, and the photos are often pasted into it.
"""

from __future__ import annotations

import io
import os
import re
import zipfile

import docx
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.table import Table

from app.intake import zip_reader
from app.intake.parsed import MediaRef, ParsedForm, ReadError, category_from_title, label_of
from app.intake.text import clean_text, find_date

_INSTRUCTION = re.compile(r"[（(]\s*简\s*述[^）)]*[）)]")
_SEAL = re.compile(r"[（(]?\s*盖\s*章\s*[）)]?")
_BLANK_DATE = re.compile(r"年\s*月\s*日")
_COLON = re.compile(r"[:：]")
_YEAR = re.compile(r"(20\d{2})\s*年")


def _cell_text(cell) -> str:
    return "\n".join(p.text for p in cell.paragraphs)


def _blips(element) -> list[str]:
    return list(element.xpath(".//a:blip/@r:embed"))


def _rows(tables, seen: set):
    """Yield (texts, image rIds) per table row with each physical cell once: repeated grid positions of a
    horizontal merge and the continuation rows of a vertical merge are skipped."""
    for table in tables:
        for row in table.rows:
            texts, blips, nested = [], [], []
            for cell in row.cells:
                # Keep the element itself: lxml hands out the same proxy for a node only while a
                # reference to it is alive, so ids of dropped proxies get reused.
                key = cell._tc
                if key in seen:
                    continue
                seen.add(key)
                texts.append(_cell_text(cell))
                blips.extend(_blips(cell._tc))
                nested.extend(cell.tables)
            if texts:
                yield texts, blips
            if nested:
                yield from _rows(nested, seen)


def _split_label(text: str):
    """(field, category hint, inline value or None) when a cell starts with a label."""
    found = label_of(text)
    if found:
        return found[0], found[1], None
    parts = _COLON.split(text, maxsplit=1)
    if len(parts) == 2:
        found = label_of(parts[0])
        if found:
            return found[0], found[1], parts[1]
    first, _, rest = text.strip().partition("\n")
    if rest:
        found = label_of(first)
        if found:
            return found[0], found[1], rest
    return None


class _Collector:
    """Collects label → value pairs into forms; a second 名称 label starts the next form."""

    def __init__(self, source: str):
        self.source = source
        self.forms: list[dict] = []
        self._new()

    def _new(self):
        self.current = {"fields": {}, "title_hint": None, "hints": [], "para_hint": None, "blips": []}
        self.forms.append(self.current)

    def title_paragraph(self, text: str):
        """"2024年全国科普日优秀活动推荐表" above a table: the weakest sign of the form's kind."""
        category = category_from_title(text)
        if category:
            if self.current["fields"]:
                self._new()
            self.current["para_hint"] = category

    def put(self, name: str, hint: str | None, value: str):
        fields = self.current["fields"]
        if name == "title" and "title" in fields:
            self._new()
            fields = self.current["fields"]
        if hint and name == "title":
            self.current["title_hint"] = hint
        elif hint:
            self.current["hints"].append(hint)
        if name not in fields or (not clean_text(fields[name]) and clean_text(value)):
            fields[name] = value

    @staticmethod
    def category(form: dict) -> str | None:
        """单位名称 vs 活动名称 decides; then the other labels (主办单位, 组织情况简介); then the heading."""
        if form["title_hint"]:
            return form["title_hint"]
        if form["hints"]:
            return max(set(form["hints"]), key=form["hints"].count)
        return form["para_hint"]


def _read_rows(rows: list[tuple[list[str], list[str]]], collector: _Collector) -> None:
    used_next = False
    for r, (cells, blips) in enumerate(rows):
        collector.current["blips"].extend(blips)
        if used_next:
            used_next = False
            continue
        if len(cells) == 1 and not _split_label(cells[0]):
            collector.title_paragraph(cells[0])
        labels = [_split_label(c) for c in cells]
        below = rows[r + 1][0] if r + 1 < len(rows) else []
        if (len(cells) >= 2 and all(f and f[2] is None for f in labels) and len(below) == len(cells)
                and not any(_split_label(c) for c in below)):
            # A header row of labels over a row of values ("联系人 | 职务" above "张三 | 科长").
            for (name, hint, _inline), value in zip(labels, below, strict=True):
                collector.put(name, hint, value)
            used_next = True
            continue
        i = 0
        while i < len(cells):
            found = _split_label(cells[i])
            if not found:
                i += 1
                continue
            name, hint, inline = found
            if inline is not None and clean_text(inline):
                collector.put(name, hint, inline)
                i += 1
            elif i + 1 < len(cells):
                nxt = cells[i + 1]
                if _split_label(nxt):
                    collector.put(name, hint, "")
                    i += 1
                else:
                    collector.put(name, hint, nxt)
                    i += 2
            else:
                # A label alone at the end of its row (the 简介 box): the value is the row below.
                below = rows[r + 1][0] if r + 1 < len(rows) else []
                if below and not any(_split_label(c) for c in below):
                    collector.put(name, hint, "\n".join(below))
                    used_next = True
                else:
                    collector.put(name, hint, "")
                i += 1


def _summary(text: str) -> str:
    return clean_text(_INSTRUCTION.sub("", text or ""))


def _recommendation(text: str):
    """推荐意见 box: the opinion text, and the date next to 盖章 (the printed 年 月 日 when left blank)."""
    found, rest = find_date(text or "")
    rest = _SEAL.sub("", rest)
    rest = _BLANK_DATE.sub("", rest)
    lines = [line.strip() for line in clean_text(rest).split("\n")]
    return "\n".join(line for line in lines if line), found


def _images(doc) -> dict[str, tuple[str, bytes]]:
    out = {}
    for rid, rel in doc.part.rels.items():
        if rel.reltype == RT.IMAGE and not rel.is_external:
            part = rel.target_part
            out[rid] = (os.path.basename(str(part.partname)), part.blob)
    return out


def read_docx(data: bytes, source: str, *, file_index: int = 0) -> tuple[list[ParsedForm], dict[int, bytes]]:
    """Every form in the document, and the embedded images by index (referenced from form.media)."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ReadError(f"「{source}」不是 .docx 文件（旧版 .doc 请先在 Word 中另存为 .docx）。")
    zip_reader.check_package(data, source)
    try:
        doc = docx.Document(io.BytesIO(data))
    except Exception:  # noqa: BLE001 — python-docx raises many kinds for a broken package
        raise ReadError(f"「{source}」无法作为 Word 文档打开，文件可能已损坏。") from None
    collector = _Collector(source)
    seen: set = set()
    body_paragraphs = [p.text for p in doc.paragraphs if p.text.strip()]
    for block in doc.iter_inner_content():
        if isinstance(block, Table):
            _read_rows(list(_rows([block], seen)), collector)
        elif block.text.strip():
            collector.title_paragraph(block.text)
    if not any(f["fields"] for f in collector.forms):
        # No form table: someone typed "单位名称：……" lines instead.
        _read_rows([([p], []) for p in body_paragraphs], collector)
    images = _images(doc)
    image_order = list(dict.fromkeys(_blips(doc.element.body)))
    forms = [f for f in collector.forms if f["fields"]]
    if not forms:
        raise ReadError(f"「{source}」中没有找到附件1或附件2的表格内容。")
    out: list[ParsedForm] = []
    year = _YEAR.search(" ".join(body_paragraphs[:5]))
    embedded: dict[int, bytes] = {}
    index_of: dict[str, int] = {}
    for n, form in enumerate(forms, start=1):
        label = source if len(forms) == 1 else f"{source}（第 {n} 份）"
        parsed = ParsedForm(source=label, file_index=file_index)
        parsed.form_year = int(year.group(1)) if year else None
        fields = form["fields"]
        parsed.category = _Collector.category(form)
        for name, value in fields.items():
            if name == "summary":
                parsed.raw["summary"] = _summary(value)
            elif name == "recommendation":
                parsed.raw["recommendation"], parsed.raw["recommendation_date"] = _recommendation(value)
            elif name == "_nominator":
                parsed.nominator_name = clean_text(value)
            elif not name.startswith("_"):
                parsed.raw[name] = clean_text(value)
        rids = image_order if len(forms) == 1 else list(dict.fromkeys(form["blips"]))
        for rid in rids:
            if rid not in images:
                continue
            name, blob = images[rid]
            if rid not in index_of:
                index_of[rid] = len(embedded)
                embedded[index_of[rid]] = blob
            parsed.media.append(MediaRef(kind="photo", name=f"{os.path.splitext(source)[0]}-{name}",
                                         image=index_of[rid]))
        out.append(parsed)
    if len(forms) > 1:
        assigned = {rid for f in forms for rid in f["blips"]}
        stray = [rid for rid in image_order if rid not in assigned and rid in images]
        if stray:
            out[0].notes.append(f"文档中有 {len(stray)} 张图片不在任何推荐表内，无法对应，未导入。")
    return out, embedded

