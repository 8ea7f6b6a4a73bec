"""Takes the demo round from `deliberating` to `final` through the real services: decisions from the
cut line, 审定意见 from the templates, an approval date, a generated red seal, 公示, 定稿.

Also home of `make_seal_png`, a believable round seal drawn with Pillow (tests use it too)."""

from __future__ import annotations

import io
import math
from datetime import date
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select

from app.deliberation import operations as decisions
from app.extensions import db
from app.models import CATEGORIES, Round, User

# Never a real organisation's name: a generated seal bearing one would be a forged seal the moment a
# demo document left the building.
SEAL_TEXT = "演示专用章"
SEAL_RED = (214, 24, 31)
_FONT = Path(__file__).resolve().parents[2] / "static" / "fonts" / "NotoSerifSC-Bold.ttf"


def _font(size: int):
    for candidate in (_FONT, _FONT.with_name("NotoSerifSC-Regular.ttf")):
        try:
            return ImageFont.truetype(str(candidate), size)
        except OSError:
            continue
    return None


def _star_points(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    inner = r * 0.382  # the inner radius of a regular five-pointed star
    points = []
    for k in range(10):
        radius = r if k % 2 == 0 else inner
        angle = -math.pi / 2 + k * math.pi / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def make_seal_png(text: str = SEAL_TEXT, size: int = 600, color=SEAL_RED) -> bytes:
    """A round official-style seal on a transparent background: a ring, a five-pointed star, the
    unit name along the upper arc (when a CJK font is available), slightly see-through like ink."""
    scale = 2  # draw large, then downsample: cheap anti-aliasing
    big = size * scale
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    ink = (*color, 255)
    ring = int(big * 0.03)
    pad = int(big * 0.02)
    draw.ellipse((pad, pad, big - pad, big - pad), outline=ink, width=ring)
    centre = big / 2
    draw.polygon(_star_points(centre, centre, big * 0.15), fill=ink)

    font = _font(int(big * 0.105))
    if font is not None and text:
        radius = big / 2 - pad - ring - big * 0.075
        span = math.radians(min(240, 24 * len(text)))
        for i, ch in enumerate(text):
            # Characters spread over the upper arc, left to right, each turned to face the centre.
            angle = -math.pi / 2 - span / 2 + span * (i + 0.5) / len(text)
            glyph = Image.new("RGBA", (int(big * 0.14), int(big * 0.14)), (0, 0, 0, 0))
            ImageDraw.Draw(glyph).text((glyph.width / 2, glyph.height / 2), ch, font=font, fill=ink, anchor="mm")
            glyph = glyph.rotate(-math.degrees(angle) - 90, resample=Image.BICUBIC)
            x = centre + radius * math.cos(angle) - glyph.width / 2
            y = centre + radius * math.sin(angle) - glyph.height / 2
            img.alpha_composite(glyph, (int(x), int(y)))

    img = img.resize((size, size), Image.LANCZOS)
    # Ink, not paint: the date printed under the seal shows through.
    alpha = img.getchannel("A").point(lambda a: int(a * 0.85))
    img.putalpha(alpha)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def finish(round_id: int, *, approval_date: date | None = None) -> dict:
    """Decide, fill opinions, date, seal, 公示, 定稿. The round must be in `deliberating`."""
    chair = db.session.scalar(select(User).where(User.role == "chair").order_by(User.id).limit(1))
    admin = db.session.scalar(select(User).where(User.role == "admin").order_by(User.id).limit(1))
    rnd = db.session.get(Round, round_id)
    out = {}
    for category in CATEGORIES:
        out[f"decisions_{category}"] = decisions.prefill_from_cut_line(round_id, category, actor=chair)
        decisions.fill_opinions(round_id, category, actor=chair)
        out[f"approved_{category}"] = decisions.approved_count(round_id, category)
    decisions.set_approval_date(round_id, approval_date or rnd.approval_date or date(rnd.year, 11, 20), actor=admin)
    decisions.save_seal(round_id, make_seal_png(SEAL_TEXT), actor=admin)
    # The demo leaves gaps on purpose (sheets not submitted, say); its 公示 and 定稿 accept them
    # the way the chair would, with a reason in the audit log.
    reason = "演示数据：未完成事项（未提交的评分表等）按设计保留，按现有材料和评分推进"
    decisions.publicize(round_id, confirm=True, reason=reason, actor=chair)
    decisions.finalize(round_id, confirm=True, reason=reason, actor=chair)
    return out
