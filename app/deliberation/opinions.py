"""What a 审定意见 says: the round's template filled in for an outcome, and the rule for an opinion
that speaks for the other outcome (a 不通过 carrying 同意推荐, or the reverse). A leaf module (models
only), so the phase pre-flight can count contradictions without importing the deliberation operations."""

from __future__ import annotations

from sqlalchemy import and_, false, or_

from app.models import CATEGORY_LABELS, Decision, Nomination, Round

OUTCOMES = ("approve", "decline")
# Words that settle what an opinion says, whatever the template: "不同意推荐" contains "同意推荐", so
# an approving opinion is one with 同意推荐 and none of the declining phrases.
APPROVE_PHRASE = "同意推荐"
DECLINE_PHRASES = ("不予推荐", "不同意推荐", "不推荐")


def opinion_text(rnd: Round, category: str, outcome: str) -> str:
    """The round's 审定意见 template filled in; plain replace, never str.format on user text."""
    tpl = rnd.opinion_approve_template if outcome == "approve" else rnd.opinion_decline_template
    return (tpl or "").replace("{year}", str(rnd.year)).replace("{category}", CATEGORY_LABELS[category])


def other(outcome: str) -> str:
    return "decline" if outcome == "approve" else "approve"


def speaks_for(text: str) -> str | None:
    """The outcome an opinion's wording states, or None when it states neither."""
    text = text or ""
    if any(p in text for p in DECLINE_PHRASES):
        return "decline"
    if APPROVE_PHRASE in text:
        return "approve"
    return None


def contradicts(rnd: Round, category: str, outcome: str, text: str) -> bool:
    """Python twin of contradiction_clause(), for one decision being written."""
    opposite = opinion_text(rnd, category, other(outcome))
    if text == opposite and opposite != opinion_text(rnd, category, outcome):
        return True
    return speaks_for(text) == other(outcome)


def contradiction_clause(rnd: Round):
    """SQL condition over Decision joined to Nomination: the opinion is the other outcome's template,
    or its wording states the other outcome."""
    says_decline = or_(*[Decision.opinion.contains(p) for p in DECLINE_PHRASES])
    says_approve = and_(Decision.opinion.contains(APPROVE_PHRASE), ~says_decline)
    templated = []
    for category in CATEGORY_LABELS:
        for outcome in OUTCOMES:
            opposite = opinion_text(rnd, category, other(outcome))
            if opposite and opposite != opinion_text(rnd, category, outcome):
                templated.append(and_(Nomination.category == category, Decision.outcome == outcome,
                                      Decision.opinion == opposite))
    return or_(and_(Decision.outcome == "decline", says_approve),
               and_(Decision.outcome == "approve", says_decline),
               or_(*templated) if templated else false())
