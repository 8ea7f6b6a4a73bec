"""Render timings of the real report documents (issue 5), next to WeasyPrint alone on the same HTML.

    .venv/bin/python scripts/bench_reports.py [--rows 500] [--forms 100] [--out DIR]

Builds a throw-away SQLite round with `rows` approved activities (500-character summaries, spread
over the 14 市州, 省直单位 and 省级学会), then times, in this order and in one process:
  first_s   the first document of the process (one 推荐表 with the seal: font set-up included)
  warm_s    the same document again
  list500_s the public list through documents.public_list_pdf (queries + template + app.reports.pdf)
  list500_bare_s   weasyprint.HTML(string=that list's HTML).write_pdf() with pdf.css and a warm
            FontConfiguration of its own, no fetcher, no lock: the ratio is our overhead
  forms100_s the batch of the first `forms` approved 推荐表 (documents.batch_forms_pdf) and
  forms100_bare_s the same HTML through bare WeasyPrint.
peak_mib is the process high-water mark (ru_maxrss). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
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


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _seed(rows: int) -> tuple[int, int]:
    from app.deliberation import operations as decisions
    from app.demo.final import make_seal_png
    from app.extensions import db
    from app.models import Decision, Nomination, Nominator
    from tests.factories import make_round

    rnd = make_round("deliberating")
    rnd.slots_activity, rnd.approval_date = rows, date(2024, 11, 20)
    cities = ["长沙市", "株洲市", "湘潭市", "衡阳市", "邵阳市", "岳阳市", "常德市", "张家界市", "益阳市", "郴州市",
              "永州市", "怀化市", "娄底市", "湘西土家族苗族自治州"]
    nominators = [Nominator(name=f"{c}科协", kind="city", position=i) for i, c in enumerate(cities, 1)]
    nominators += [Nominator(name=f"湖南省第{i}厅", kind="member", position=20 + i) for i in range(1, 9)]
    nominators += [Nominator(name=f"湖南省第{i}学会", kind="society", position=40 + i) for i in range(1, 9)]
    db.session.add_all(nominators)
    db.session.flush()
    summary = ("本单位围绕“提升全民科学素质，协力建设科技强国”主题，组织科技工作者走进社区、学校和乡村，"
               "开展科普报告、科学实验秀、科普展览等活动，群众参与踊跃，社会反响良好。") * 8
    for i in range(rows):
        nom = Nomination(round_id=rnd.id, nominator_id=nominators[i % len(nominators)].id, category="activity",
                         title=f"第{i + 1}项“科技助力现代化 科普赋能高质量发展”主题科普活动",
                         host=f"某某市某某区科学技术协会（{i + 1}）", contact_name="张三", contact_title="科普部部长",
                         contact_phone="13812345678", address="长沙市岳麓区麓山南路932号", event_count=12,
                         people_served=3000 + i, summary=summary[:500], recommendation="同意推荐。" * 20,
                         recommendation_date=date(2024, 9, 30))
        db.session.add(nom)
        db.session.flush()
        db.session.add(Decision(nomination_id=nom.id, outcome="approve",
                                opinion="经专家评审、会议审定，同意推荐为2024年全国科普日优秀活动。"))
    db.session.commit()
    decisions.save_seal(rnd.id, make_seal_png())
    first = db.session.scalar(db.select(Nomination.id).order_by(Nomination.id).limit(1))
    return rnd.id, first


class Bare:
    """WeasyPrint alone: same stylesheet, its own warm FontConfiguration, the default fetcher."""

    def __init__(self):
        from weasyprint import CSS
        from weasyprint.text.fonts import FontConfiguration

        from app.reports.pdf import STATIC_BASE_URL, STATIC_DIR

        self.base = STATIC_BASE_URL
        self.font_config = FontConfiguration()
        self.css = CSS(filename=str(STATIC_DIR / "css" / "pdf.css"), font_config=self.font_config)
        self.static = STATIC_DIR

    def render(self, html: str, extra_files: dict) -> bytes:
        from weasyprint import HTML

        # Bare WeasyPrint cannot read kepu-file:/static URLs: point them at real files instead.
        for name, data in extra_files.items():
            path = Path(tempfile.gettempdir()) / f"bench-{name}"
            path.write_bytes(data)
            html = html.replace(f"kepu-file:{name}", path.as_uri())
        return HTML(string=html, base_url=self.static.as_uri() + "/").write_pdf(
            stylesheets=[self.css], font_config=self.font_config, optimize_images=True, jpeg_quality=85, dpi=300)


CPU: dict[str, float] = {}


def _time(fn, key: str | None = None):
    """Wall time (what a user waits); CPU time of the process is kept too, as this machine is
    shared and wall times under load are noisy."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    if key:
        CPU[key.replace("_s", "_cpu_s")] = time.process_time() - c0
    return time.perf_counter() - t0, out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--forms", type=int, default=100)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from app import create_app
    from app.extensions import db
    from app.reports import documents, queries

    folder = tempfile.mkdtemp(prefix="kepu-bench-")
    app = create_app({"TESTING": True, "SECRET_KEY": "bench", "UPLOAD_FOLDER": os.path.join(folder, "uploads"),
                      "SQLALCHEMY_DATABASE_URI": "sqlite:///" + os.path.join(folder, "bench.sqlite3")})
    results: dict = {}
    with app.app_context():
        db.create_all()
        round_id, first_id = _seed(args.rows)

        results["first_s"], _ = _time(lambda: documents.nomination_form_pdf(first_id), "first_s")
        results["warm_s"], _ = _time(lambda: documents.nomination_form_pdf(first_id), "warm_s")

        results["list500_s"], lst = _time(lambda: documents.public_list_pdf(round_id, "activity"), "list500_s")
        source = documents.public_list_source(round_id, "activity")
        bare = Bare()
        bare.render("<p>预热</p>", {})
        results["list500_bare_s"], _ = _time(lambda: bare.render(source.html, source.extra_files), "list500_bare_s")

        # The batch document of the first N approved forms (same builder as batch_forms_pdf).
        from flask import render_template

        from app.deliberation import operations as decisions

        noms = queries.approved_nominations(round_id, "activity")[: args.forms]
        rnd = documents.load_round(round_id)

        def forms_source():
            html = render_template("pdf/batch_forms.html", title="bench", category_label="优秀活动", nominations=noms,
                                   rnd=rnd, decisions=queries.decisions_for([n.id for n in noms]),
                                   seal_src=documents.SEAL_SRC, approval_date=rnd.approval_date)
            return documents.Source(html, {documents.SEAL_NAME: decisions.seal_bytes(rnd)}, "bench.pdf")

        results["forms100_s"], forms = _time(lambda: forms_source().render(), "forms100_s")
        src = forms_source()
        results["forms100_bare_s"], _ = _time(lambda: bare.render(src.html, src.extra_files), "forms100_bare_s")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "list.pdf").write_bytes(lst.content)
            (args.out / "forms.pdf").write_bytes(forms.content)
        import io

        from pypdf import PdfReader

        results["list_pages"] = len(PdfReader(io.BytesIO(lst.content)).pages)
        results["forms_pages"] = len(PdfReader(io.BytesIO(forms.content)).pages)

    results.update(CPU)
    results = {k: round(v, 2) if isinstance(v, float) else v for k, v in results.items()}
    results["ratio_list"] = round(results["list500_s"] / results["list500_bare_s"], 2)
    results["ratio_forms"] = round(results["forms100_s"] / results["forms100_bare_s"], 2)
    results["ratio_list_cpu"] = round(results["list500_cpu_s"] / results["list500_bare_cpu_s"], 2)
    results["ratio_forms_cpu"] = round(results["forms100_cpu_s"] / results["forms100_bare_cpu_s"], 2)
    results["rows"], results["forms"] = args.rows, args.forms
    results["peak_mib"] = round(_peak_mib(), 1)
    for key in ("first_s", "warm_s", "list500_s", "list500_bare_s", "forms100_s", "forms100_bare_s"):
        print(f"{key:>16}: {results[key]:.2f} s wall, {results[key.replace('_s', '_cpu_s')]:.2f} s CPU")
    print(json.dumps(results, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
