#!/usr/bin/env python3
"""Benchmark app.reports.pdf.render_pdf: a 500-row list and a 100-form document.

Usage: .venv/bin/python scripts/bench_pdf.py [--out DIR]
Prints one line per case, then a JSON object as the last line.
Peak RSS is the process high-water mark (ru_maxrss) after each case.
"""

from __future__ import annotations

import argparse
import html
import io
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.reports.pdf import render_pdf  # noqa: E402


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _doc(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )


def list_document(rows: int) -> str:
    trs = "".join(
        f'<tr><td class="num">{i}</td><td>第{i}项 “科技助力现代化 科普赋能高质量发展”主题科普活动</td>'
        f'<td>某某省某某市科学技术协会</td><td class="num">{80 + i % 20}.{i % 10}</td>'
        f'<td class="num">{i}</td></tr>'
        for i in range(1, rows + 1)
    )
    return _doc(
        "优秀活动评审结果",
        '<h1 class="doc-title">2024年全国科普日优秀活动评审结果</h1>'
        '<p class="doc-subtitle">（按得分排序）</p>'
        '<table class="list-table"><colgroup><col style="width:12mm"><col>'
        '<col style="width:42mm"><col style="width:16mm"><col style="width:12mm"></colgroup>'
        '<thead><tr><th class="num">序号</th><th>活动名称</th><th>组织单位</th>'
        '<th class="num">得分</th><th class="num">排名</th></tr></thead>'
        f"<tbody>{trs}</tbody></table>",
    )


def forms_document(forms: int) -> str:
    intro = "本单位高度重视全国科普日活动，围绕主题组织开展了形式多样的科普活动，" * 6
    parts = []
    for i in range(1, forms + 1):
        parts.append(
            f'<section class="{"page-break" if i > 1 else ""}">'
            '<p class="attachment-label">附件1</p>'
            '<h1 class="doc-title small">2024年全国科普日优秀活动推荐表</h1>'
            '<table class="form-table"><colgroup><col style="width:30mm"><col>'
            '<col style="width:30mm"><col></colgroup>'
            f"<tr><th>活动名称</th><td colspan=3>第{i}号 社区科学之夜</td></tr>"
            f"<tr><th>组织单位</th><td colspan=3>某某区科学技术协会（第{i}号）</td></tr>"
            "<tr><th>联系人</th><td>张三</td><th>联系电话</th><td>010-12345678</td></tr>"
            "<tr><th>活动时间</th><td>2024年9月15日</td><th>参与人数</th><td>1200</td></tr>"
            f'<tr class="long-text"><th>活动简介</th><td class="long-text" colspan=3>{intro}</td></tr>'
            "</table>"
            '<div class="seal-box"><div class="seal-unit">某某区科学技术协会</div>'
            '<div class="seal-date">2024年9月30日</div>'
            '<img class="seal" src="kepu-file:seal.png" alt=""></div>'
            "</section>"
        )
    return _doc("优秀活动推荐表", "".join(parts))


def seal_png() -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (496, 496), (0, 0, 0, 0))  # 42 mm at 300 dpi
    draw = ImageDraw.Draw(img)
    draw.ellipse((8, 8, 488, 488), outline=(220, 0, 0, 230), width=18)
    draw.regular_polygon((248, 248, 70), 5, rotation=-90, fill=(220, 0, 0, 230))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, help="write the PDFs here")
    args = parser.parse_args()

    from pypdf import PdfReader

    results = {"rss_mb_start": round(_peak_rss_mb(), 1)}
    cases = [
        ("warmup_1_page", lambda: render_pdf(_doc("w", '<h1 class="doc-title">预热</h1>'))),
        ("list_500_rows", lambda: render_pdf(list_document(500))),
        ("forms_100", lambda: render_pdf(forms_document(100), extra_files={"seal.png": seal_png()})),
    ]
    for name, fn in cases:
        t0 = time.perf_counter()
        pdf = fn()
        seconds = time.perf_counter() - t0
        pages = len(PdfReader(io.BytesIO(pdf)).pages)
        results[name] = {
            "seconds": round(seconds, 2),
            "pages": pages,
            "pdf_kb": round(len(pdf) / 1024, 1),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
        }
        print(f"{name}: {seconds:.2f}s, {pages} pages, {len(pdf) / 1024:.0f} KiB, "
              f"peak RSS {_peak_rss_mb():.0f} MiB", flush=True)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{name}.pdf").write_bytes(pdf)
    results["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    print(json.dumps(results, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
