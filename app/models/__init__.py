"""All tables; importing this package registers them with the metadata."""

from ._base import CATEGORIES, CATEGORY_LABELS
from .audit import AuditEvent
from .nomination import Attachment, FormFinding, Nomination
from .people import KIND_LABELS, ROLE_LABELS, Nominator, User
from .review import Assignment, Decision, Recusal, ReviewSheet, Score
from .round import METHOD_LABELS, PHASE_LABELS, PHASES, Criterion, RankingCounter, Round

__all__ = [
    "CATEGORIES", "CATEGORY_LABELS", "KIND_LABELS", "ROLE_LABELS", "METHOD_LABELS", "PHASE_LABELS", "PHASES",
    "AuditEvent", "Attachment", "FormFinding", "Nomination", "Nominator", "User", "Assignment", "Decision",
    "Recusal", "ReviewSheet", "Score", "Criterion", "RankingCounter", "Round",
]
