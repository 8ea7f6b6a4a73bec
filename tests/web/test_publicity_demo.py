"""The demo round (150 nominations with contact people, phones and addresses, scored by 7 reviewers)
in 公示: neither the public page nor the 公示 PDF carries a contact person, a phone, an address or a
score — only the names on the list, in the official order."""

from __future__ import annotations

import io
import re

from pypdf import PdfReader
from sqlalchemy import select

from app.extensions import db
from app.models import CATEGORIES, Nomination, Score
from app.ranking import engine as ranking
from app.reports import queries as lists
from tests.publicity_fixtures import publicize_demo_round


def test_demo_round_public_page_and_pdf_have_no_personal_data_or_scores(demo_app):
    with demo_app.app_context():
        rnd = publicize_demo_round()
        year = rnd.year
        noms = list(db.session.scalars(select(Nomination).where(Nomination.round_id == rnd.id)))
        contacts = {n.contact_name for n in noms if n.contact_name} | {n.contact_phone for n in noms if n.contact_phone}
        addresses = {n.address for n in noms if n.address and len(n.address) > 6}
        approved = [item.title for c in CATEGORIES for g in lists.approved_groups(rnd.id, c)
                    for n in g.nominators for item in n.items]
        aggregates = {f"{r.aggregate:.2f}" for c in CATEGORIES for r in ranking.compute(rnd.id, c)
                      if r.aggregate is not None}
        raw_scores = {f"{v:.1f}" for v in db.session.scalars(select(Score.value)) if v >= 10}
    assert contacts and approved and aggregates
    client = demo_app.test_client()
    html = client.get(f"/gongshi/{year}").get_data(as_text=True)
    pdf = client.get(f"/gongshi/{year}/gongshi.pdf")
    assert pdf.status_code == 200
    text = "".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf.data)).pages)
    flat = re.sub(r"\s+", "", text)
    for where, body in (("page", html), ("pdf", flat)):
        leaked = sorted(c for c in contacts | addresses if re.sub(r"\s+", "", c) in body)
        assert not leaked, f"{where} shows personal data: {leaked[:5]}"
        assert not [a for a in aggregates if a in body], where
        assert not re.search(r"\d+\.\d", body) or not (raw_scores & set(re.findall(r"\d+\.\d", body))), where
        assert "联系人" not in body and "联系电话" not in body and "得分" not in body
    for title in approved:
        assert title in html
        assert re.sub(r"\s+", "", title) in flat
