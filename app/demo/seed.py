"""The demo round: a believable 2024 Hunan round at any stage of its life, built in one transaction."""

from __future__ import annotations

import io
import random
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path

from PIL import Image
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from app.audit import operations as audit
from app.core import storage
from app.core.database import write_transaction
from app.core.errors import UserError
from app.demo import data as demo_data
from app.extensions import db
from app.models import (
    Assignment,
    Attachment,
    Nomination,
    Nominator,
    RankingCounter,
    ReviewSheet,
    Round,
    Score,
    User,
)
from app.models._base import CATEGORIES, utcnow
from app.models.round import default_criteria, default_quotas

STAGES = ("collecting", "reviewing", "deliberating", "final")
YEAR = 2024
# One lenient and one harsh expert make the z-score and severity views worth looking at.
REVIEWER_BIAS = [0.0, 6.0, -1.0, 1.5, -7.0, 0.5, -0.5]
# A few nominations carry the shipped demo video (5 s, 480×270 H.264, made once with ffmpeg), so the
# player can be seen while most still show the 缺少活动视频 finding, as in a real round. Chosen by
# position, not by the data generator's random stream, which the rest of the demo data depends on.
DEMO_VIDEO = Path(__file__).resolve().parent / "media" / "activity-demo.mp4"
VIDEO_EVERY = 12


def database_is_empty() -> bool:
    return db.session.scalar(select(func.count()).select_from(User)) == 0


def seed(stage: str = "reviewing", *, photos: bool = True, seed_value: int = YEAR, target_total: int = 150) -> dict:
    if stage not in STAGES:
        raise UserError(f"未知阶段：{stage}。可选：{', '.join(STAGES)}。")
    rng = random.Random(seed_value)
    with write_transaction():
        if db.session.scalar(select(Round).where(Round.year == YEAR)) is not None:
            raise UserError("演示批次已存在；如需重建请使用新的数据库。", status=409)
        nominators = _nominators()
        rnd = _round()
        users = _users(nominators)
        noms = _nominations(rnd, nominators, rng, photos, seed_value, target_total)
        reviewers = [u for u in users if u.role == "reviewer"]
        n_assign = _assign_everyone(reviewers, noms)
        scored = 0
        rnd.phase = "collecting"
        if stage in ("reviewing", "deliberating", "final"):
            fraction = 0.5 if stage == "reviewing" else 1.0
            scored = _score(rnd, reviewers, noms, rng, fraction)
            rnd.phase = "reviewing"
        if stage in ("deliberating", "final"):
            rnd.phase = "deliberating"
        summary = {"stage": stage, "nominators": len(nominators), "nominations": len(noms),
                   "assignments": n_assign, "submitted_sheets": scored, "users": len(users)}
        audit.record("demo.seed", "round", rnd.id, after=summary, round_id=rnd.id)
    # The 形式审查 page shows real findings right after set-up (missing videos, late arrivals...).
    from app.intake import form_check

    form_check.run(rnd.id)
    if stage == "final":
        # Through the real services (decisions, opinions, date, seal, 公示, 定稿), each in its own
        # transaction, exactly as the chair and admin would do it.
        from app.demo import final as demo_final

        summary.update(demo_final.finish(rnd.id))
    return summary


def _nominators() -> dict[str, Nominator]:
    out = {}
    for pos, item in enumerate(demo_data.NOMINATORS, start=1):
        nominator = Nominator(name=item["name"], short_name=item.get("short", ""), kind=item["kind"], position=pos)
        db.session.add(nominator)
        out[item["name"]] = nominator
    db.session.flush()
    return out


def _round() -> Round:
    rnd = Round(year=YEAR, name="2024年全国科普日优秀组织单位和优秀活动评选", phase="setup",
                deadline=date(2024, 10, 8), slots_unit=40, slots_activity=35, method="trimmed",
                quotas=default_quotas(), approval_date=date(2024, 11, 20))
    db.session.add(rnd)
    db.session.flush()
    for category in CATEGORIES:
        db.session.add_all(default_criteria(rnd.id, category))
        db.session.add(RankingCounter(round_id=rnd.id, category=category, version=1))
    db.session.flush()
    return rnd


def _users(nominators: dict[str, Nominator]) -> list[User]:
    # One hash for every demo account: scrypt is deliberately slow and the password is the same.
    pw_hash = generate_password_hash(demo_data.DEMO_PASSWORD)
    people = [dict(demo_data.ADMIN, role="admin"), dict(demo_data.CHAIR, role="chair")]
    people += [dict(r, role="reviewer") for r in demo_data.REVIEWERS]
    users = []
    for p in people:
        aff = nominators[p["affiliation"]].id if p.get("affiliation") else None
        user = User(username=p["username"], display_name=p["display_name"], role=p["role"],
                    password_hash=pw_hash, affiliation_id=aff)
        db.session.add(user)
        users.append(user)
    # The 推荐单位 accounts: bound to their unit, with the public demo password and no forced change.
    for p in demo_data.NOMINATOR_ACCOUNTS:
        user = User(username=p["username"], display_name=p["display_name"], role="nominator",
                    password_hash=pw_hash, affiliation_id=nominators[p["affiliation"]].id, email=p["email"],
                    phone=p["phone"], must_change_password=False)
        db.session.add(user)
        users.append(user)
    db.session.flush()
    return users


def _nominations(rnd, nominators, rng, photos: bool, seed_value: int, target_total: int) -> list[Nomination]:
    noms = []
    for i, item in enumerate(demo_data.generate_nominations(seed=seed_value, target_total=target_total)):
        rec_date = item["recommendation_date"]
        nom = Nomination(
            round_id=rnd.id, nominator_id=nominators[item["nominator"]].id, category=item["category"],
            title=item["title"], host=item.get("host"), contact_name=item["contact_name"],
            contact_title=item["contact_title"], contact_phone=item["contact_phone"], address=item["address"],
            event_count=item["event_count"], people_served=item["people_served"], summary=item["summary"],
            recommendation=item["recommendation"], recommendation_date=rec_date,
            received_at=datetime.combine(rec_date, time(10, 0)).astimezone(),
            source_key=f"demo:{seed_value}:{i}",
        )
        db.session.add(nom)
        if photos:
            for pos in range(item["photo_count"]):
                nom.attachments.append(_demo_photo(seed_value * 1000 + i * 10 + pos, item["title"], pos))
        if has_video(i):
            nom.attachments.append(_demo_video(position=item["photo_count"]))
        noms.append(nom)
    db.session.flush()
    return noms


def _demo_photo(photo_seed: int, caption: str, position: int) -> Attachment:
    data = demo_data.make_photo(photo_seed, caption)
    image = Image.open(io.BytesIO(data))
    stored = storage.save_bytes(data, "jpg")
    return Attachment(kind="photo", stored_name=stored, thumb_name=storage.save_thumbnail(image),
                      original_name=f"活动照片{position + 1}.jpg", mime="image/jpeg", size_bytes=len(data),
                      width=image.width, height=image.height, position=position)


def has_video(index: int) -> bool:
    return index % VIDEO_EVERY == VIDEO_EVERY // 2


@cache
def _video_bytes() -> bytes:
    return DEMO_VIDEO.read_bytes()


def _demo_video(position: int) -> Attachment:
    data = _video_bytes()
    # Checked like an upload: the file shipped must be one the app itself would accept.
    from app.intake.uploads import video_type

    mime, ext = video_type(data[:4096])
    return Attachment(kind="video", stored_name=storage.save_bytes(data, ext), original_name=f"活动视频.{ext}",
                      mime=mime, size_bytes=len(data), position=position)


def _assign_everyone(reviewers: list[User], noms: list[Nomination]) -> int:
    """The default mode: every reviewer scores every nomination except their own unit's (回避)."""
    rows = [{"reviewer_id": r.id, "nomination_id": n.id} for r in reviewers for n in noms
            if r.affiliation_id != n.nominator_id]
    db.session.execute(Assignment.__table__.insert(), rows)
    return len(rows)


def _score(rnd: Round, reviewers, noms, rng: random.Random, fraction: float) -> int:
    criteria = {cat: [c for c in rnd.criteria if c.category == cat] for cat in CATEGORIES}
    quality = {n.id: rng.gauss(76, 7) for n in noms}
    submitted = 0
    now = utcnow()
    for r_index, reviewer in enumerate(reviewers):
        bias = REVIEWER_BIAS[r_index % len(REVIEWER_BIAS)]
        for nom in noms:
            if reviewer.affiliation_id == nom.nominator_id or rng.random() > fraction:
                continue
            target = min(99.0, max(40.0, quality[nom.id] + bias + rng.gauss(0, 3.5)))
            sheet = ReviewSheet(reviewer_id=reviewer.id, nomination_id=nom.id, status="submitted",
                                submitted_at=now - timedelta(minutes=rng.randint(5, 3000)),
                                comment=rng.choice(_COMMENTS))
            for c in criteria[nom.category]:
                raw = c.max_score * target / 100 + rng.gauss(0, c.max_score * 0.03)
                value = round(min(c.max_score, max(0.0, raw)) / c.step) * c.step
                sheet.scores.append(Score(criterion_id=c.id, value=value))
            db.session.add(sheet)
            submitted += 1
    db.session.flush()
    return submitted


_COMMENTS = [
    "活动组织规范，覆盖面广，群众参与度高。",
    "内容紧扣主题，形式新颖，建议加强后续宣传。",
    "活动特色鲜明，社会反响较好。",
    "组织较为有力，但材料中影响力数据支撑略显不足。",
    "科普内容科学严谨，面向青少年效果突出。",
    "形式多样，线上线下结合，传播效果明显。",
    "",
]
