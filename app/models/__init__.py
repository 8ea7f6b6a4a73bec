"""All tables; importing this package registers them with the metadata."""

from app.models._base import CATEGORIES, CATEGORY_LABELS
from app.models.audit import AuditEvent
from app.models.mail import OutboxMessage
from app.models.nomination import Attachment, DeadlineExtension, FormFinding, Nomination
from app.models.people import KIND_LABELS, ROLE_LABELS, Nominator, User
from app.models.publicity import NoticeSettings, Objection
from app.models.ranking import (
                                RankingChange,
                                RankingEntry,
                                RankingMark,
                                RankingMean,
                                RankingReviewer,
                                RankingSheet,
                                RankingZ,
)
from app.models.review import Assignment, Decision, Recusal, ReviewSheet, Score
from app.models.round import METHOD_LABELS, PHASE_LABELS, PHASES, Criterion, RankingCounter, Round

__all__ = [
    "CATEGORIES", "CATEGORY_LABELS", "KIND_LABELS", "ROLE_LABELS", "METHOD_LABELS", "PHASE_LABELS", "PHASES",
    "AuditEvent", "Attachment", "DeadlineExtension", "OutboxMessage", "FormFinding", "Nomination", "Nominator", "User", "Assignment", "Decision",
    "Recusal", "ReviewSheet", "Score", "Criterion", "RankingCounter", "Round",
    "NoticeSettings", "Objection", "RankingChange", "RankingEntry", "RankingMark", "RankingMean", "RankingReviewer", "RankingSheet", "RankingZ",
]
