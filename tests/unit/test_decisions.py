"""Decisions service: the cut line, reasons, opinions, quotas, seal, dates, and the phase moves."""

from __future__ import annotations

import io
import os
from datetime import date

import pytest
from PIL import Image
from sqlalchemy import func, select

from app.core import storage
from app.core.errors import UserError
from app.deliberation import operations as decisions
from app.demo.final import make_seal_png
from app.extensions import db
from app.models import AuditEvent, Decision, Round
from app.rounds import phases as rounds
from tests.chair_fixtures import build_small_round

APPROVE_TEXT = "经专家评审、会议审定，同意推荐为2024年全国科普日优秀活动。"
DECLINE_TEXT = "经审定，不予推荐。"
BOTH = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


@pytest.fixture
def small(app):
    with app.app_context():
        yield build_small_round()


def _decision(nomination_id: int) -> Decision | None:
    db.session.expire_all()
    return db.session.scalar(select(Decision).where(Decision.nomination_id == nomination_id))


def _audits(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def _png(mode="RGBA", size=(300, 300), color=(200, 0, 0, 0), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img = Image.new(mode, size, color)
    if mode == "RGBA":
        img.paste((200, 0, 0, 255), (50, 50, 250, 250))
    img.save(buf, format=fmt)
    return buf.getvalue()


# ----------------------------------------------------------------------------- cut line


def test_standings_follow_the_ranking_and_the_cut_line(small):
    rnd = small.round()
    rows = decisions.standings(rnd, "activity")
    assert [s.nomination_id for s in rows] == [small.noms[k] for k in ("A1", "A2", "A3", "A4", "A5")]
    assert [s.rank for s in rows] == [1, 2, 3, 4, 5]
    assert [s.above_line for s in rows] == [True, True, False, False, False]
    assert all(s.decision is None for s in rows)


def test_prefill_creates_decisions_from_the_cut_line_with_template_opinions(small):
    chair = small.user("chair")
    made = decisions.prefill_from_cut_line(small.round_id, "activity", actor=chair)
    assert made == 5
    outcomes = {k: _decision(small.noms[k]) for k in ("A1", "A2", "A3", "A4", "A5")}
    assert {k: d.outcome for k, d in outcomes.items()} == {
        "A1": "approve", "A2": "approve", "A3": "decline", "A4": "decline", "A5": "decline"}
    assert outcomes["A1"].opinion == APPROVE_TEXT
    assert outcomes["A3"].opinion == DECLINE_TEXT
    assert outcomes["A1"].decided_by_id == chair.id
    # Units untouched; a second prefill finds nothing to do.
    assert _decision(small.noms["U1"]) is None
    assert decisions.prefill_from_cut_line(small.round_id, "activity", actor=chair) == 0
    assert len(_audits("decision.prefill")) == 5


def test_unit_template_names_the_unit_category(small):
    decisions.prefill_from_cut_line(small.round_id, "unit")
    assert _decision(small.noms["U1"]).opinion == "经专家评审、会议审定，同意推荐为2024年全国科普日优秀组织单位。"


def test_crossing_the_line_needs_a_reason_and_is_audited(small):
    chair = small.user("chair")
    a3 = small.noms["A3"]
    with pytest.raises(UserError) as err:
        decisions.decide(a3, "approve", actor=chair)
    assert err.value.status == 422 and "reason" in err.value.field_errors
    assert _decision(a3) is None

    dec = decisions.decide(a3, "approve", reason="该活动覆盖全省，社会影响大", actor=chair)
    assert dec.outcome == "approve" and dec.override_reason == "该活动覆盖全省，社会影响大"
    assert dec.opinion == APPROVE_TEXT
    event = _audits("decision.set")[-1]
    assert event.object_id == a3 and event.reason == "该活动覆盖全省，社会影响大"
    assert event.before is None and event.after["outcome"] == "approve"

    # Declining one above the line needs a reason too; following the line does not.
    with pytest.raises(UserError):
        decisions.decide(small.noms["A1"], "decline", actor=chair)
    assert decisions.decide(small.noms["A1"], "approve", actor=chair).override_reason == ""
    assert decisions.decide(small.noms["A4"], "decline", actor=chair).outcome == "decline"


def test_flipping_the_outcome_updates_a_template_opinion_but_keeps_a_handwritten_one(small):
    a1, a2 = small.noms["A1"], small.noms["A2"]
    decisions.prefill_from_cut_line(small.round_id, "activity")
    dec = decisions.decide(a1, "decline", reason="材料不实")
    assert dec.opinion == DECLINE_TEXT and dec.version == 2 and not dec.opinion_edited

    # A hand-written opinion: changing the decision asks what to do, and writes nothing until told.
    decisions.set_opinion(a2, "特别肯定其航天主题，材料翔实。")
    assert _decision(a2).opinion_edited
    with pytest.raises(decisions.OpinionChoiceNeeded) as err:
        decisions.decide(a2, "decline", reason="名额调整")
    assert err.value.status == 409 and "opinion_choice" in err.value.field_errors
    assert err.value.template == DECLINE_TEXT
    assert (_decision(a2).outcome, _decision(a2).version) == ("approve", 2)
    dec = decisions.decide(a2, "decline", reason="名额调整", opinion_choice="keep")
    assert dec.outcome == "decline" and dec.opinion == "特别肯定其航天主题，材料翔实。" and dec.opinion_edited


def test_a_decline_never_keeps_an_approving_opinion_nor_the_reverse(small):
    a2, a3 = small.noms["A2"], small.noms["A3"]
    decisions.prefill_from_cut_line(small.round_id, "activity")
    decisions.set_opinion(a2, "经审定，同意推荐，特别肯定其航天主题。")
    with pytest.raises(UserError) as err:
        decisions.decide(a2, "decline", reason="名额调整", opinion_choice="keep")
    assert err.value.status == 409 and "矛盾" in err.value.message
    assert _decision(a2).outcome == "approve"
    dec = decisions.decide(a2, "decline", reason="名额调整", opinion_choice="template")
    assert dec.opinion == DECLINE_TEXT and not dec.opinion_edited

    decisions.set_opinion(a3, "材料不足，不予推荐。")
    with pytest.raises(UserError, match="矛盾"):
        decisions.decide(a3, "approve", reason="复核后同意", opinion_choice="keep")
    assert decisions.decide(a3, "approve", reason="复核后同意", opinion_choice="template").opinion == APPROVE_TEXT


def test_an_opinion_typed_equal_to_the_template_still_follows_it(small):
    a1 = small.noms["A1"]
    decisions.prefill_from_cut_line(small.round_id, "activity")
    decisions.set_opinion(a1, "临时意见")
    decisions.set_opinion(a1, APPROVE_TEXT)
    assert not _decision(a1).opinion_edited
    assert decisions.decide(a1, "decline", reason="材料不实").opinion == DECLINE_TEXT
    decisions.set_opinion(a1, "手写")
    decisions.fill_opinions(small.round_id, "activity", overwrite=True)
    assert not _decision(a1).opinion_edited


def test_stale_version_is_a_conflict_and_changes_nothing(small):
    a1 = small.noms["A1"]
    decisions.decide(a1, "approve", expected_version=0)
    with pytest.raises(UserError) as err:
        decisions.decide(a1, "decline", reason="x", expected_version=0)
    assert err.value.status == 409
    assert _decision(a1).outcome == "approve"
    with pytest.raises(UserError) as err:
        decisions.set_opinion(a1, "新的意见", expected_version=5)
    assert err.value.status == 409


def test_bad_input_is_refused(small):
    a1 = small.noms["A1"]
    with pytest.raises(UserError):
        decisions.decide(a1, "maybe")
    with pytest.raises(UserError) as err:
        decisions.decide(a1, "decline", reason="理" * 501)
    assert "reason" in err.value.field_errors
    with pytest.raises(UserError) as err:
        decisions.decide(999_999, "approve")
    assert err.value.status == 404
    with pytest.raises(UserError) as err:
        decisions.set_opinion(a1, "没有审定就写意见")
    assert err.value.status == 409
    decisions.decide(a1, "approve")
    for bad in ("", "   ", "意" * (decisions.OPINION_MAX + 1)):
        with pytest.raises(UserError) as err:
            decisions.set_opinion(a1, bad)
        assert "opinion" in err.value.field_errors
    assert _decision(a1).opinion == APPROVE_TEXT


def test_withdrawn_nomination_cannot_be_decided(small):
    nom = small.nom("A5")
    nom.status = "withdrawn"
    db.session.commit()
    with pytest.raises(UserError) as err:
        decisions.decide(nom.id, "decline")
    assert err.value.status == 409


def test_fill_opinions_fills_empty_ones_or_overwrites_on_request(small):
    decisions.prefill_from_cut_line(small.round_id, "activity")
    a1, a3 = small.noms["A1"], small.noms["A3"]
    decisions.set_opinion(a1, "手写的意见")
    db.session.execute(Decision.__table__.update().where(Decision.nomination_id == a3).values(opinion=""))
    db.session.commit()
    assert decisions.fill_opinions(small.round_id, "activity") == 1
    assert _decision(a3).opinion == DECLINE_TEXT
    assert _decision(a1).opinion == "手写的意见"
    assert decisions.fill_opinions(small.round_id, "activity", overwrite=True) == 1
    assert _decision(a1).opinion == APPROVE_TEXT


@BOTH
def test_quota_warning_when_a_nominator_gets_more_approvals_than_its_quota(small, backend):
    rnd = small.round()
    decisions.prefill_from_cut_line(small.round_id, "activity")
    assert decisions.quota_warnings(rnd, "activity") == []
    decisions.decide(small.noms["A3"], "approve", reason="同一单位两个优秀活动")
    warnings = decisions.quota_warnings(small.round(), "activity")
    assert [(w.nominator_name, w.approved, w.quota) for w in warnings] == [("株洲市科协", 2, 1)]
    summary = decisions.summary(small.round(), "activity")
    assert (summary.approved, summary.declined, summary.undecided, summary.crossing) == (3, 2, 0, 1)
    assert summary.over_slots


def test_templates_accept_only_known_placeholders(small):
    admin = small.user("admin")
    for bad in ("同意推荐为{year.__class__}。", "{name}同意", "同意{", ""):
        with pytest.raises(UserError):
            decisions.set_templates(small.round_id, bad, "经审定，不予推荐。", actor=admin)
    decisions.set_templates(small.round_id, "{year}年{category}：同意。", "{category}：不同意。", actor=admin)
    rnd = small.round()
    assert decisions.opinion_text(rnd, "activity", "approve") == "2024年优秀活动：同意。"
    assert decisions.opinion_text(rnd, "unit", "decline") == "优秀组织单位：不同意。"
    assert _audits("round.opinion_templates")


def test_approval_date_range_and_audit(small):
    with pytest.raises(UserError):
        decisions.set_approval_date(small.round_id, date(2019, 1, 1))
    with pytest.raises(UserError):
        decisions.parse_date("2024/11/20")
    decisions.set_approval_date(small.round_id, decisions.parse_date("2024-12-01"))
    assert small.round().approval_date == date(2024, 12, 1)
    assert _audits("round.approval_date")[-1].after == {"approval_date": "2024-12-01"}


# ----------------------------------------------------------------------------- seal


def test_seal_is_validated_and_reencoded(small, app):
    admin = small.user("admin")
    cases = [
        (b"", "必填"),
        (b"not an image at all", "不是图片"),
        (_png(mode="RGB", color=(255, 255, 255), fmt="JPEG"), "须为 PNG"),
        (_png(mode="RGB", color=(255, 255, 255)), "没有透明背景"),
        (_png(size=(50, 50)), "尺寸不合适"),
        (_blank_png(), "图片为空"),
    ]
    for data, field_message in cases:
        with pytest.raises(UserError) as err:
            decisions.save_seal(small.round_id, data, actor=admin)
        assert err.value.field_errors.get("seal") == field_message, field_message
    assert small.round().seal_file is None
    assert os.listdir(storage.upload_dir()) == []

    original = make_seal_png(size=400)
    decisions.save_seal(small.round_id, original, actor=admin)
    first = small.round().seal_file
    stored = decisions.seal_bytes(small.round())
    img = Image.open(io.BytesIO(stored))
    assert img.format == "PNG" and img.mode == "RGBA" and img.size == (400, 400)
    assert img.getchannel("A").getextrema()[0] == 0

    decisions.save_seal(small.round_id, make_seal_png(size=300), actor=admin)
    assert small.round().seal_file != first
    assert os.listdir(storage.upload_dir()) == [small.round().seal_file]  # the old file is gone
    assert len(_audits("round.seal")) == 2


def _blank_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (300, 300), (0, 0, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def test_oversized_seal_file_is_413(small):
    with pytest.raises(UserError) as err:
        decisions.validate_seal(b"\x89PNG" + b"0" * decisions.SEAL_MAX_BYTES)
    assert err.value.status == 413


# ----------------------------------------------------------------------------- phases


@BOTH
def test_publicize_finalize_and_nothing_changes_afterwards(app, backend):
    with app.app_context():
        small = build_small_round()
        chair, admin = small.user("chair"), small.user("admin")
        with pytest.raises(UserError, match="尚未审定"):
            decisions.publicize(small.round_id, actor=chair)
        for category in ("activity", "unit"):
            decisions.prefill_from_cut_line(small.round_id, category, actor=chair)
        decisions.publicize(small.round_id, actor=chair)
        assert small.round().phase == "publicizing"
        # Locked while 公示 runs.
        with pytest.raises(UserError) as err:
            decisions.decide(small.noms["A1"], "decline", reason="x", actor=chair)
        assert err.value.status == 409

        rnd = small.round()
        rnd.approval_date = None
        db.session.commit()
        with pytest.raises(UserError, match="审定日期"):
            decisions.finalize(small.round_id, actor=chair)
        decisions.set_approval_date(small.round_id, date(2024, 11, 20), actor=admin)
        decisions.finalize(small.round_id, actor=chair)
        rnd = small.round()
        assert rnd.phase == "final" and rnd.finalized_at is not None

        before = {d.nomination_id: (d.outcome, d.opinion, d.version) for d in db.session.scalars(select(Decision))}
        attempts = [
            lambda: decisions.decide(small.noms["A1"], "decline", reason="x", actor=chair),
            lambda: decisions.decide(small.noms["A3"], "approve", reason="x", actor=chair),
            lambda: decisions.set_opinion(small.noms["A1"], "改写", actor=chair),
            lambda: decisions.fill_opinions(small.round_id, "activity", overwrite=True, actor=chair),
            lambda: decisions.prefill_from_cut_line(small.round_id, "activity", actor=chair),
            lambda: decisions.set_approval_date(small.round_id, date(2024, 12, 1), actor=admin),
            lambda: decisions.save_seal(small.round_id, make_seal_png(size=200), actor=admin),
            lambda: decisions.set_templates(small.round_id, "同意", "不同意", actor=admin),
            lambda: rounds.change_phase(small.round_id, "publicizing", actor=admin),  # back needs a reason
        ]
        for attempt in attempts:
            with pytest.raises(UserError):
                attempt()
        db.session.expire_all()
        after = {d.nomination_id: (d.outcome, d.opinion, d.version) for d in db.session.scalars(select(Decision))}
        assert after == before
        assert small.round().approval_date == date(2024, 11, 20) and small.round().seal_file is None


@BOTH
def test_reopen_is_admin_only_needs_a_reason_and_is_audited(app, backend):
    with app.app_context():
        small = build_small_round()
        chair, admin = small.user("chair"), small.user("admin")
        for category in ("activity", "unit"):
            decisions.prefill_from_cut_line(small.round_id, category)
        decisions.publicize(small.round_id, actor=chair)
        decisions.finalize(small.round_id, actor=chair)

        with pytest.raises(UserError) as err:
            decisions.reopen(small.round_id, "公示期收到异议", actor=chair)
        assert err.value.status == 403
        with pytest.raises(UserError) as err:
            decisions.reopen(small.round_id, "  ", actor=admin)
        assert "reason" in err.value.field_errors
        assert small.round().phase == "final"

        decisions.reopen(small.round_id, "公示期收到异议，需复核A3", actor=admin)
        rnd = small.round()
        assert rnd.phase == "publicizing" and rnd.finalized_at is None
        event = _audits("round.phase_back")[-1]
        assert event.actor_id == admin.id and event.reason == "公示期收到异议，需复核A3"
        assert event.before == {"phase": "final"} and event.after == {"phase": "publicizing"}

        decisions.reopen(small.round_id, "复核后调整审定", actor=admin)
        assert small.round().phase == "deliberating"
        decisions.decide(small.noms["A3"], "approve", reason="复核后同意", actor=chair)
        assert _decision(small.noms["A3"]).outcome == "approve"
        with pytest.raises(UserError):
            decisions.reopen(small.round_id, "再退", actor=admin)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_finalize_and_decisions_racing_on_postgres(app_factory, backend):
    """Decisions racing the phase change: each either commits before the round leaves `deliberating`
    or is refused; none lands after (checked with the audit log's order)."""
    import threading

    app = app_factory()
    with app.app_context():
        small = build_small_round()
        for category in ("activity", "unit"):
            decisions.prefill_from_cut_line(small.round_id, category)
        noms = list(small.noms.values())

    results: list[str] = []
    start = threading.Barrier(3)

    def flip(nomination_ids):
        with app.app_context():
            start.wait()
            for i in range(30):
                nom_id = nomination_ids[i % len(nomination_ids)]
                try:
                    current = _decision(nom_id)
                    decisions.decide(nom_id, "decline" if current.outcome == "approve" else "approve",
                                     reason="并发测试", expected_version=current.version)
                    results.append("ok")
                except UserError as e:
                    results.append(str(e.status))
            db.session.remove()

    def move():
        with app.app_context():
            start.wait()
            decisions.publicize(small.round_id)
            db.session.remove()

    threads = [threading.Thread(target=flip, args=(noms[:4],)), threading.Thread(target=flip, args=(noms[4:],)),
               threading.Thread(target=move)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with app.app_context():
        phase_event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "round.phase"))
        late = db.session.scalar(select(func.count(AuditEvent.id)).where(
            AuditEvent.action == "decision.set", AuditEvent.id > phase_event.id))
        assert late == 0
        assert db.session.get(Round, small.round_id).phase == "publicizing"
    assert set(results) <= {"ok", "409"}
    assert "409" in results or results.count("ok") == 60
