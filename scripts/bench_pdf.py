#!/usr/bin/env python3
"""PDF benchmark: the real report documents through app.reports (queries + template + app.reports.pdf),
each next to WeasyPrint alone on exactly the same HTML.

    .venv/bin/python scripts/bench_pdf.py [--rows 500] [--forms 100] [--out DIR]

Builds a throw-away SQLite database with two final rounds (seal uploaded): 2024 with `rows` approved
activities (500-character summaries, spread over the 14 市州, 省直单位 and 省级学会) and 2023 with
`forms` approved activities. Then, in this order and in one fresh process:
  first_s          the first document of the process (one 推荐表 with the seal): fonts load, pdf.css parses
  warm_s           the same small document again, everything warm
  list500_s        the 2024 public list (documents.public_list_pdf)
  list500_bare_s   weasyprint.HTML(string=that list's HTML).write_pdf() with pdf.css, the same PDF options
                   and a warm FontConfiguration of its own; no safe fetcher, no renderer pool
  forms100_s       the 2023 batch of approved 推荐表 (documents.batch_forms_pdf), and forms100_bare_s
  part50_s         one run of 50 of those forms as a split batch renders it (batch_forms_part_source, no
                   cover: what each consumer does 20 times for 1,000 forms); form_cpu_ms = its CPU per form
  ratio_list, ratio_forms   ours / bare (also per CPU second: *_cpu). Bare is stock WeasyPrint (its own
                   user-agent sheet, HTML parser and collector settings): below 1 means app/reports/pdf.py
                   makes WeasyPrint do less than it does by default; above 1, what our own layer costs.
  peak_mib         the process high-water mark (ru_maxrss), seeding included
The LAST line printed is one JSON object with these keys (and the page counts). Results:
docs/benchmarks.md section 4.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CITIES = ["长沙市", "株洲市", "湘潭市", "衡阳市", "邵阳市", "岳阳市", "常德市", "张家界市", "益阳市", "郴州市",
          "永州市", "怀化市", "娄底市", "湘西土家族苗族自治州"]
SUMMARY = ("本单位围绕“提升全民科学素质，协力建设科技强国”主题，组织科技工作者走进社区、学校和乡村，"
           "开展科普报告、科学实验秀、科普展览等活动，群众参与踊跃，社会反响良好。") * 8


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _nominators() -> list:
    from app.extensions import db
    from app.models import Nominator

    people = [Nominator(name=f"{c}科协", kind="city", position=i) for i, c in enumerate(CITIES, 1)]
    people += [Nominator(name=f"湖南省第{i}厅", kind="member", position=20 + i) for i in range(1, 9)]
    people += [Nominator(name=f"湖南省第{i}学会", kind="society", position=40 + i) for i in range(1, 9)]
    db.session.add_all(people)
    db.session.commit()
    return people


def _final_round(year: int, rows: int, nominators: list) -> int:
    """A round in its final phase with `rows` approved activities and the seal: what the 名单 and the
    batch of 推荐表 are printed from."""
    from app.deliberation import operations as decisions
    from app.demo.final import make_seal_png
    from app.extensions import db
    from app.models import Decision, Nomination
    from tests.factories import make_round

    rnd = make_round("deliberating", year=year)
    rnd.slots_activity, rnd.approval_date = rows, date(year, 11, 20)
    for i in range(rows):
        nom = Nomination(round_id=rnd.id, nominator_id=nominators[i % len(nominators)].id, category="activity",
                         title=f"第{i + 1}项“科技助力现代化 科普赋能高质量发展”主题科普活动",
                         host=f"某某市某某区科学技术协会（{i + 1}）", contact_name="张三", contact_title="科普部部长",
                         contact_phone="13812345678", address="长沙市岳麓区麓山南路932号", event_count=12,
                         people_served=3000 + i, summary=SUMMARY[:500], recommendation="同意推荐。" * 20,
                         recommendation_date=date(year, 9, 30))
        db.session.add(nom)
        db.session.flush()
        db.session.add(Decision(nomination_id=nom.id, outcome="approve",
                                opinion=f"经专家评审、会议审定，同意推荐为{year}年全国科普日优秀活动。"))
    db.session.commit()
    decisions.save_seal(rnd.id, make_seal_png())  # refused once final: upload first, then finalise
    rnd.phase = "final"
    db.session.commit()
    return rnd.id


class Bare:
    """WeasyPrint alone: the same stylesheet and PDF options, its own warm FontConfiguration, the
    default fetcher (kepu-file: sources rewritten to real files)."""

    def __init__(self, folder: Path):
        from weasyprint import CSS
        from weasyprint.text.fonts import FontConfiguration

        from app.reports import pdf

        self.folder = folder
        self.static = pdf.STATIC_DIR
        self.options = pdf._PDF_OPTIONS  # the app's own options, so the ratio compares like with like
        self.font_config = FontConfiguration()
        self.css = CSS(filename=str(self.static / "css" / "pdf.css"), font_config=self.font_config)

    def render(self, html: str, extra_files: dict[str, bytes]) -> bytes:
        from weasyprint import HTML

        for name, data in extra_files.items():
            path = self.folder / f"bare-{name}"
            path.write_bytes(data)
            html = html.replace(f"kepu-file:{name}", path.as_uri())
        return HTML(string=html, base_url=self.static.as_uri() + "/").write_pdf(
            stylesheets=[self.css], font_config=self.font_config, **self.options)


def _timed(results: dict, key: str, fn):
    """Wall time (what a user waits) under `key`, CPU time of the process under key_cpu: this machine
    is shared and wall times under load are noisy."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    results[key] = time.perf_counter() - t0
    results[key.removesuffix("_s") + "_cpu_s"] = time.process_time() - c0
    return out


def _pages(pdf: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf)).pages)


def run(rows: int, forms: int, folder: Path, out: Path | None) -> dict:
    from app import create_app
    from app.extensions import db
    from app.reports import documents

    app = create_app({"TESTING": True, "SECRET_KEY": "bench", "UPLOAD_FOLDER": str(folder / "uploads"),
                      "SQLALCHEMY_DATABASE_URI": "sqlite:///" + str(folder / "bench.sqlite3")})
    r: dict = {}
    with app.app_context():
        db.create_all()
        nominators = _nominators()
        list_round = _final_round(2024, rows, nominators)
        forms_round = _final_round(2023, forms, nominators)
        first_form = min(n.id for n in documents.queries.approved_nominations(list_round, "activity"))

        # Nothing has rendered in this process yet: the first document pays for the fonts.
        first = _timed(r, "first_s", lambda: documents.nomination_form_pdf(first_form))
        _timed(r, "warm_s", lambda: documents.nomination_form_pdf(first_form))

        lst = _timed(r, "list500_s", lambda: documents.public_list_pdf(list_round, "activity"))
        bare = Bare(folder)
        bare.render("<p>预热</p>", {})  # its fonts load outside the timing, as ours did in first_s
        source = documents.public_list_source(list_round, "activity")
        _timed(r, "list500_bare_s", lambda: bare.render(source.html, source.extra_files))

        batch = _timed(r, "forms100_s", lambda: documents.batch_forms_pdf(forms_round, "activity"))
        source = documents.batch_forms_source(forms_round, "activity")
        _timed(r, "forms100_bare_s", lambda: bare.render(source.html, source.extra_files))
        run = [n.id for n in documents.queries.approved_nominations(forms_round, "activity")][:50]
        part = _timed(r, "part50_s", lambda: documents.batch_forms_part_source(
            forms_round, "activity", ids=run, cover=False, page_first=40, page_total=200).render())
        r["form_cpu_ms"] = r["part50_cpu_s"] / len(run) * 1000
        r["part_pages"] = _pages(part.content)

        r["first_pages"], r["list_pages"], r["forms_pages"] = _pages(first.content), _pages(lst.content), \
            _pages(batch.content)
        r["list_kib"], r["forms_kib"] = round(len(lst.content) / 1024, 1), round(len(batch.content) / 1024, 1)
        if out:
            out.mkdir(parents=True, exist_ok=True)
            (out / "form.pdf").write_bytes(first.content)
            (out / "list.pdf").write_bytes(lst.content)
            (out / "forms.pdf").write_bytes(batch.content)
        db.session.remove()
        db.engine.dispose()
    r = {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}
    for kind, case in (("list", "list500"), ("forms", "forms100")):
        r[f"ratio_{kind}"] = round(r[f"{case}_s"] / r[f"{case}_bare_s"], 2)
        r[f"ratio_{kind}_cpu"] = round(r[f"{case}_cpu_s"] / r[f"{case}_bare_cpu_s"], 2)
    r["rows"], r["forms"] = rows, forms
    r["peak_mib"] = round(_peak_mib(), 1)
    return r


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500, help="approved activities on the public list")
    parser.add_argument("--forms", type=int, default=100, help="approved 推荐表 in the batch")
    parser.add_argument("--out", type=Path, help="also write the PDFs here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kepu-bench-pdf-") as tmp:
        os.environ.pop("KEPU_DATABASE_URL", None)  # the bench's own SQLite file, whatever the shell says
        results = run(args.rows, args.forms, Path(tmp), args.out)
    for key in ("first_s", "warm_s", "list500_s", "list500_bare_s", "forms100_s", "forms100_bare_s", "part50_s"):
        print(f"{key:>16}: {results[key]:6.2f} s wall, {results[key.removesuffix('_s') + '_cpu_s']:6.2f} s CPU")
    print(f"list {results['list_pages']} pages (ours/bare {results['ratio_list']}), forms {results['forms_pages']} "
          f"pages (ours/bare {results['ratio_forms']}), a 50-form part {results['form_cpu_ms']} ms CPU per form, "
          f"peak {results['peak_mib']} MiB")
    print(json.dumps(results, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
