"""The demo data module: a believable, deterministic 2024 Hunan round (pure Python, no database)."""

from __future__ import annotations

import collections
import datetime as dt
import io
import re

import pytest

from app.demo import data

CITY_ORDER = ["长沙市", "株洲市", "湘潭市", "衡阳市", "邵阳市", "岳阳市", "常德市", "张家界市", "益阳市", "郴州市", "永州市",
              "怀化市", "娄底市", "湘西土家族苗族自治州"]
PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-[2-9]\d{6,7})$")
DEADLINE = dt.date(2024, 10, 8)


@pytest.fixture(scope="module")
def noms() -> list[dict]:
    return data.generate_nominations()


def test_nominators_cities_first_in_standard_order():
    names = [n["name"] for n in data.NOMINATORS]
    assert names[:14] == [f"{c}科协" for c in CITY_ORDER]
    assert [n["kind"] for n in data.NOMINATORS[:14]] == ["city"] * 14
    kinds = [n["kind"] for n in data.NOMINATORS]
    # grouped: cities, then 省纲要办成员单位, then 省级学会
    assert kinds == sorted(kinds, key=["city", "member", "society"].index)
    counts = collections.Counter(kinds)
    assert counts["member"] >= 10 and counts["society"] >= 10
    assert len(set(names)) == len(names)
    assert all(n["short"] for n in data.NOMINATORS)


def test_quotas_and_rubric_constants():
    assert data.QUOTAS == {"city": {"unit": 8, "activity": 6}, "member": {"unit": 2, "activity": 2},
                           "society": {"unit": 1, "activity": 1}}
    assert [c["code"] for c in data.DEFAULT_RUBRIC] == ["content", "format", "influence", "response"]
    assert [c["max"] for c in data.DEFAULT_RUBRIC] == [30, 20, 30, 20]
    assert sum(c["max"] for c in data.DEFAULT_RUBRIC) == 100
    assert all(c["step"] == 0.5 and c["guidance"] and c["name"] for c in data.DEFAULT_RUBRIC)


def test_quotas_respected_per_nominator_and_category(noms):
    kinds = {n["name"]: n["kind"] for n in data.NOMINATORS}
    per = collections.Counter((n["nominator"], n["category"]) for n in noms)
    for (nominator, category), count in per.items():
        assert nominator in kinds
        assert count <= data.QUOTAS[kinds[nominator]][category], (nominator, category, count)


def test_total_and_both_categories_well_represented(noms):
    assert 140 <= len(noms) <= 160
    cats = collections.Counter(n["category"] for n in noms)
    assert set(cats) == {"unit", "activity"}
    assert min(cats.values()) >= len(noms) // 3
    kinds = {n["name"]: n["kind"] for n in data.NOMINATORS}
    assert {kinds[n["nominator"]] for n in noms} == {"city", "member", "society"}


def test_grouped_in_official_order(noms):
    order = {n["name"]: i for i, n in enumerate(data.NOMINATORS)}
    positions = [order[n["nominator"]] for n in noms]
    assert positions == sorted(positions)


def test_fields_are_complete_and_believable(noms):
    for n in noms:
        assert n["category"] in ("unit", "activity")
        assert n["title"] and n["contact_name"] and n["contact_title"] and n["address"] and n["recommendation"]
        assert 2 <= len(n["contact_name"]) <= 4
        assert PHONE.match(n["contact_phone"]), n["contact_phone"]
        if n["category"] == "unit":
            assert n["host"] is None
            assert 5 <= n["event_count"] <= 120
        else:
            assert n["host"]
            assert 1 <= n["event_count"] <= 30
        assert n["event_count"] * 10 <= n["people_served"] <= n["event_count"] * 6000
        assert 3 <= n["photo_count"] <= 5
        assert isinstance(n["recommendation_date"], dt.date)
        assert dt.date(2024, 9, 25) <= n["recommendation_date"] <= dt.date(2024, 10, 15)
        assert "同意推荐" in n["recommendation"] or "特此推荐" in n["recommendation"]


def test_addresses_are_in_the_nominators_city(noms):
    for n in noms:
        if n["nominator"].endswith("科协"):
            city = n["nominator"][: -len("科协")]
            assert n["address"].startswith(city), (n["nominator"], n["address"])


def test_both_phone_kinds_and_a_few_late(noms):
    mobiles = [n for n in noms if "-" not in n["contact_phone"]]
    assert 0 < len(mobiles) < len(noms)
    late = [n for n in noms if n["recommendation_date"] > DEADLINE]
    assert 1 <= len(late) <= max(2, len(noms) // 15)


def test_titles_unique(noms):
    titles = [n["title"] for n in noms]
    assert len(set(titles)) == len(titles)


def test_summaries_length_and_distinct(noms):
    summaries = [n["summary"] for n in noms]
    assert all(200 <= len(s) <= 500 for s in summaries), sorted(len(s) for s in summaries)[-3:]
    assert len(set(summaries)) == len(summaries)
    # not just distinct: no stock sentence turns up in more than a sixth of them
    sentences = collections.Counter()
    for s in summaries:
        unquoted = re.sub(r"“[^”]*”", "“”", s)
        sentences.update({x for x in unquoted.split("。") if len(x) > 8})
    sentence, count = sentences.most_common(1)[0]
    assert count <= len(summaries) // 6, (count, sentence)
    for s in summaries:
        assert "{" not in s and "}" not in s
        assert "人次" in s  # people served is reported


def test_reviewer_affiliations_are_nominators_with_nominations(noms):
    names = {n["name"]: n["kind"] for n in data.NOMINATORS}
    assert [r["username"] for r in data.REVIEWERS] == [f"expert{i}" for i in range(1, 8)]
    affiliated = [r["affiliation"] for r in data.REVIEWERS if r["affiliation"]]
    assert len(affiliated) == 2
    assert sorted(names[a] for a in affiliated) == ["city", "society"]
    for a in affiliated:  # so that 回避 can be seen in the demo
        assert {n["category"] for n in noms if n["nominator"] == a} == {"unit", "activity"}
    assert data.CHAIR["username"] == "chair" and data.ADMIN["username"] == "admin"
    assert data.CHAIR["display_name"] and data.ADMIN["display_name"]
    assert data.DEMO_PASSWORD


def test_deterministic_for_same_seed_and_different_for_another():
    a = data.generate_nominations(seed=7, target_total=120)
    b = data.generate_nominations(seed=7, target_total=120)
    c = data.generate_nominations(seed=8, target_total=120)
    assert a == b
    assert [n["summary"] for n in a] != [n["summary"] for n in c]
    assert 110 <= len(a) <= 130


@pytest.mark.parametrize("seed,total", [(1, 60), (3, 200), (11, 150)])
def test_other_seeds_and_sizes_keep_the_rules(seed, total):
    noms = data.generate_nominations(seed=seed, target_total=total)
    kinds = {n["name"]: n["kind"] for n in data.NOMINATORS}
    per = collections.Counter((n["nominator"], n["category"]) for n in noms)
    assert all(c <= data.QUOTAS[kinds[nm]][cat] for (nm, cat), c in per.items())
    assert abs(len(noms) - total) <= 10
    assert len({n["title"] for n in noms}) == len(noms)
    assert len({n["summary"] for n in noms}) == len(noms)
    assert all(200 <= len(n["summary"]) <= 500 for n in noms)


def test_photo_captions_fit_count(noms):
    for n in noms[:20]:
        caps = data.photo_captions(n)
        assert len(caps) == n["photo_count"]
        assert len(set(caps)) == len(caps)
        assert caps == data.photo_captions(n)


def test_make_photo_is_a_valid_jpeg_of_the_right_size():
    from PIL import Image

    raw = data.make_photo(3, "“银龄跨越数字鸿沟”智能手机应用科普进社区活动")
    assert raw[:3] == b"\xff\xd8\xff"
    img = Image.open(io.BytesIO(raw))
    assert img.format == "JPEG"
    assert img.size == (960, 640)
    img.verify()

    small = Image.open(io.BytesIO(data.make_photo(4, "学生体验VR地震逃生", size=(480, 320))))
    assert small.size == (480, 320)
    assert data.make_photo(3, "同一张") == data.make_photo(3, "同一张")
    assert data.make_photo(3, "同一张") != data.make_photo(4, "同一张")


def test_make_photo_without_a_cjk_font_skips_the_text(monkeypatch):
    from PIL import Image

    monkeypatch.setattr(data, "_font", lambda size: None)
    img = Image.open(io.BytesIO(data.make_photo(5, "没有字体时不画豆腐块", size=(640, 400))))
    assert img.format == "JPEG" and img.size == (640, 400)


def test_nominator_accounts_speak_for_units_with_nominations_of_each_kind(noms):
    kinds = {n["name"]: n["kind"] for n in data.NOMINATORS}
    accounts = data.NOMINATOR_ACCOUNTS
    assert [a["username"] for a in accounts][0] == "changsha"
    assert [a["affiliation"] for a in accounts][0] == "长沙市科协"
    # one 市州科协, one 省纲要办成员单位, one 省级学会 — each unit once, each with something to see
    assert sorted(kinds[a["affiliation"]] for a in accounts) == ["city", "member", "society"]
    assert len({a["affiliation"] for a in accounts}) == len(accounts)
    for a in accounts:
        assert any(n["nominator"] == a["affiliation"] for n in noms), a["affiliation"]
        assert re.fullmatch(r"[a-z]+", a["username"]) and "@" in a["email"] and PHONE.match(a["phone"])
    others = {r["username"] for r in data.REVIEWERS} | {data.CHAIR["username"], data.ADMIN["username"]}
    assert not others & {a["username"] for a in accounts}
