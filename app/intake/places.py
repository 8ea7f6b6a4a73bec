"""Hunan's 14 市州 and their 122 县市区 (2024), for telling which 市州 a unit's name or address is in.

A 附件1 form often names no nominator, but "株洲市天元区…" or "醴陵市…" says which 市科协 sent it.
Matching is on whole names, longest first and without overlaps, so "衡南县" is 衡阳's and never the
"南县" of 益阳, and "武陵源区" (张家界) is not "武陵区" (常德).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CITIES: dict[str, tuple[str, ...]] = {
    "长沙市": ("芙蓉区", "天心区", "岳麓区", "开福区", "雨花区", "望城区", "长沙县", "浏阳市", "宁乡市"),
    "株洲市": ("荷塘区", "芦淞区", "石峰区", "天元区", "渌口区", "攸县", "茶陵县", "炎陵县", "醴陵市"),
    "湘潭市": ("雨湖区", "岳塘区", "湘潭县", "湘乡市", "韶山市"),
    "衡阳市": ("珠晖区", "雁峰区", "石鼓区", "蒸湘区", "南岳区", "衡阳县", "衡南县", "衡山县", "衡东县", "祁东县",
             "耒阳市", "常宁市"),
    "邵阳市": ("双清区", "大祥区", "北塔区", "新邵县", "邵阳县", "隆回县", "洞口县", "绥宁县", "新宁县",
             "城步苗族自治县", "武冈市", "邵东市"),
    "岳阳市": ("岳阳楼区", "云溪区", "君山区", "岳阳县", "华容县", "湘阴县", "平江县", "汨罗市", "临湘市"),
    "常德市": ("武陵区", "鼎城区", "安乡县", "汉寿县", "澧县", "临澧县", "桃源县", "石门县", "津市市"),
    "张家界市": ("永定区", "武陵源区", "慈利县", "桑植县"),
    "益阳市": ("资阳区", "赫山区", "南县", "桃江县", "安化县", "沅江市"),
    "郴州市": ("北湖区", "苏仙区", "桂阳县", "宜章县", "永兴县", "嘉禾县", "临武县", "汝城县", "桂东县", "安仁县",
             "资兴市"),
    "永州市": ("零陵区", "冷水滩区", "东安县", "双牌县", "道县", "江永县", "宁远县", "蓝山县", "新田县",
             "江华瑶族自治县", "祁阳市"),
    "怀化市": ("鹤城区", "中方县", "沅陵县", "辰溪县", "溆浦县", "会同县", "麻阳苗族自治县", "新晃侗族自治县",
             "芷江侗族自治县", "靖州苗族侗族自治县", "通道侗族自治县", "洪江市"),
    "娄底市": ("娄星区", "双峰县", "新化县", "冷水江市", "涟源市"),
    "湘西土家族苗族自治州": ("吉首市", "泸溪县", "凤凰县", "花垣县", "保靖县", "古丈县", "永顺县", "龙山县"),
}

# Names people write instead of the full one: the 市州 without 市 ("长沙"), 湘西州, the county-level
# cities without 市 ("浏阳", "醴陵" — but not 津市, which is inside 天津市), and the autonomous counties
# without the ethnic part ("城步县", "江华县", "靖州县"). District and county names are matched only in
# full: "天元", "雨花" or "南县" alone mean other things too.
_CITY_SHORT = {"湘西土家族苗族自治州": ("湘西州", "湘西")}
_NOT_SHORTENED = {"津市市"}
_AUTONOMOUS = re.compile(r"^(.+?)(?:(?:苗|侗|瑶|土家)族)+自治县$")


@dataclass(frozen=True)
class Place:
    city: str  # the 市州's full name
    county: str | None  # the 县市区, when the text named one
    word: str  # what the text said


def city_short(city: str) -> str:
    """长沙市 → 长沙; 湘西土家族苗族自治州 → 湘西."""
    return _CITY_SHORT.get(city, (city[:-1],))[-1]


def _names() -> list[tuple[str, str, str | None]]:
    out = []
    for city, counties in CITIES.items():
        out.append((city, city, None))
        for short in _CITY_SHORT.get(city, (city[:-1],)):
            out.append((short, city, None))
        for county in counties:
            out.append((county, city, county))
            if county.endswith("市") and len(county) >= 3 and county not in _NOT_SHORTENED:
                out.append((county[:-1], city, county))
            m = _AUTONOMOUS.match(county)
            if m:
                out.append((m.group(1) + "县", city, county))
    # Longest first: "岳阳楼区" before "岳阳", "衡南县" before "南县".
    return sorted(out, key=lambda x: -len(x[0]))


NAMES = _names()


def places_in(text: str | None) -> list[Place]:
    """Every 市州 / 县市区 the text names, in order, as non-overlapping longest matches."""
    text = re.sub(r"\s+", "", text or "")
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, Place]] = []
    for word, city, county in NAMES:
        start = text.find(word)
        while start != -1:
            end = start + len(word)
            if not any(start < e and s < end for s, e in taken):
                taken.append((start, end))
                found.append((start, Place(city, county, word)))
            start = text.find(word, start + 1)
    return [p for _s, p in sorted(found, key=lambda x: x[0])]


def cities_in(text: str | None) -> list[str]:
    """The distinct 市州 the text names, in order of first mention."""
    out: list[str] = []
    for p in places_in(text):
        if p.city not in out:
            out.append(p.city)
    return out
