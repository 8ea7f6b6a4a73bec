"""What every reader returns (ParsedForm), the labels of 附件1/附件2, and the reader error."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from app.intake.text import norm_label


class ReadError(Exception):
    """A file that cannot be read at all (the message is shown to the admin as is)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class MediaRef:
    """A photo or video that came with a form: inside a .zip (member) or embedded in a .docx (image)."""

    kind: str  # photo | video
    name: str
    file_index: int = 0
    member: str | None = None  # the media file inside a .zip, or the .docx inside a .zip holding the image
    image: int | None = None  # index of an image embedded in a .docx


@dataclass
class ParsedForm:
    source: str
    file_index: int = 0
    category: str | None = None
    raw: dict = field(default_factory=dict)
    nominator_name: str = ""  # an explicit 推荐单位 (spreadsheet column, a 推荐单位 row in a form)
    hints: list[str] = field(default_factory=list)  # file and folder names, for guessing the nominator
    received: date | None = None
    notes: list[str] = field(default_factory=list)
    media: list[MediaRef] = field(default_factory=list)
    form_year: int | None = None


# Labels as printed on 附件1/附件2 and the variants people type, after norm_label(); "_unit"/"_activity"
# mark the labels that tell the two forms apart.
LABELS = {
    "单位名称": ("title", "unit"), "组织单位名称": ("title", "unit"),
    "活动名称": ("title", "activity"), "活动主题": ("title", "activity"),
    "主办单位": ("host", "activity"), "主办方": ("host", "activity"), "举办单位": ("host", "activity"),
    "联系人": ("contact_name", None), "联系人姓名": ("contact_name", None), "姓名": ("contact_name", None),
    "职务": ("contact_title", None), "职务职称": ("contact_title", None), "职称": ("contact_title", None),
    "联系电话": ("contact_phone", None), "电话": ("contact_phone", None), "手机": ("contact_phone", None),
    "手机号码": ("contact_phone", None), "联系方式": ("contact_phone", None),
    "通讯地址": ("address", None), "通信地址": ("address", None), "联系地址": ("address", None),
    "地址": ("address", None),
    "组织开展的活动场数": ("event_count", "unit"), "组织开展活动场数": ("event_count", "unit"),
    "开展活动场数": ("event_count", None), "活动场数": ("event_count", None), "活动场次": ("event_count", None),
    "场数": ("event_count", None), "场次": ("event_count", None),
    "服务人数": ("people_served", None), "服务人次": ("people_served", None), "参与人数": ("people_served", None),
    "受众人数": ("people_served", None), "覆盖人数": ("people_served", None),
    "组织情况简介": ("summary", "unit"), "活动情况简介": ("summary", "activity"), "情况简介": ("summary", None),
    "简介": ("summary", None),
    "推荐单位": ("_nominator", None), "推荐单位名称": ("_nominator", None),
}
_OPINION = re.compile(r"(推荐意见|审定意见)$")


def label_of(text: str) -> tuple[str, str | None] | None:
    """(field, category hint) when `text` is a form label, else None. The long 推荐意见 label
    ("市州科协或省级学会或省直单位推荐意见") is recognised by its ending; 审定意见 maps to "_approval"
    (filled in later by 省科协, never imported)."""
    key = norm_label(text)
    if not key:
        return None
    if key in LABELS:
        return LABELS[key]
    if len(key) <= 40:
        m = _OPINION.search(key)
        if m:
            return ("recommendation", None) if m.group(1) == "推荐意见" else ("_approval", None)
    return None


CATEGORY_WORDS = {"优秀组织单位": "unit", "组织单位": "unit", "附件1": "unit", "单位": "unit", "1": "unit",
                  "unit": "unit", "优秀活动": "activity", "活动": "activity", "附件2": "activity", "2": "activity",
                  "activity": "activity"}


def category_from_word(value) -> str | None:
    key = norm_label(value).lower()
    return CATEGORY_WORDS.get(key)


def category_from_title(text: str) -> str | None:
    """"2024年全国科普日优秀组织单位推荐表" → unit."""
    key = norm_label(text)
    if "推荐表" not in key and "附件" not in key:
        return None
    if "优秀组织单位" in key or key.startswith("附件1"):
        return "unit"
    if "优秀活动" in key or key.startswith("附件2"):
        return "activity"
    return None
