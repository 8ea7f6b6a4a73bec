"""Every limit of the intake forms, in one place: the WTForms declarations in app.intake.forms use these
numbers, templates render `maxlength` from those declarations, and imports are checked by the same forms.
The column limits live with the model (the database checks them too); the rest are policy."""

from __future__ import annotations

from app.models.nomination import ADDRESS_MAX, RECOMMENDATION_MAX, SHORT_MAX, SUMMARY_MAX, TITLE_MAX

REASON_MAX = 500  # 撤回 / 恢复 reasons
NOTE_MAX = 500  # 形式审查 resolve / waive notes
COUNT_MAX = 2_000_000_000  # 活动场数, 服务人数: fits the INTEGER column with room to spare
YEAR_MIN, YEAR_MAX = 2000, 2100  # a date outside is a typo, not a real 推荐日期

NOMINATOR_NAME_MAX = 100
NOMINATOR_SHORT_MAX = 50
POSITION_MAX = 9999
QUOTA_MAX = 999

__all__ = ["ADDRESS_MAX", "COUNT_MAX", "NOMINATOR_NAME_MAX", "NOMINATOR_SHORT_MAX", "NOTE_MAX", "POSITION_MAX",
           "QUOTA_MAX", "REASON_MAX", "RECOMMENDATION_MAX", "SHORT_MAX", "SUMMARY_MAX", "TITLE_MAX", "YEAR_MAX",
           "YEAR_MIN"]
