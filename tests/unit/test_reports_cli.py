"""`flask reports …` and `flask demo seed --stage final` through click's runner. (The background job
runner the downloads page uses: tests/unit/test_jobs.py and tests/load/test_jobs_processes.py.)"""

from __future__ import annotations

import io
import os

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import func, select

from app.core import storage
from app.deliberation import operations as decisions
from app.extensions import db
from app.models import AuditEvent, Decision, Round
from tests.chair_fixtures import build_decided_round


def _text(path) -> str:
    with open(path, "rb") as fh:
        data = fh.read()
    assert data.startswith(b"%PDF-")
    return "".join((p.extract_text() or "") for p in PdfReader(io.BytesIO(data)).pages).replace("\n", "")


@pytest.fixture
def decided(app):
    with app.app_context():
        return build_decided_round()


def test_cli_writes_every_document(app, decided, tmp_path):
    runner = app.test_cli_runner()
    out = tmp_path / "out"
    cases = [
        (["list", "--category", "activity"], "list.pdf", "2024年全国科普日优秀活动名单"),
        (["report", "--category", "activity"], "report.pdf", "评审结果报告"),
        (["forms", "--category", "activity"], "forms.pdf", "优秀活动推荐表"),
        (["forms", "--category", "unit", "--nomination", str(decided.noms["U2"])], "form.pdf", "湖南省气象台"),
        (["sheets", "--category", "unit"], "sheets.pdf", "r3对U2的评审意见"),
        (["sheets", "--category", "unit", "--reviewer", "r1"], "sheet-r1.pdf", "r1对U2的评审意见"),
    ]
    for args, name, expected in cases:
        target = out / name
        result = runner.invoke(args=["reports", *args, "--round", "2024", "--out", str(target)])
        assert result.exit_code == 0, result.output
        assert "已生成" in result.output
        assert expected in _text(target), name
    assert "r2对U2" not in _text(out / "sheet-r1.pdf")

    for args, name, sheet in [(["report", "--category", "unit", "--format", "xlsx"], "rank.xlsx", "排名"),
                              (["list", "--category", "unit", "--format", "xlsx"], "list.xlsx", "优秀组织单位")]:
        result = runner.invoke(args=["reports", *args, "--out", str(out / name)])
        assert result.exit_code == 0, result.output
        assert sheet in load_workbook(out / name).sheetnames


def test_cli_refuses_bad_arguments(app, decided, tmp_path):
    runner = app.test_cli_runner()
    target = str(tmp_path / "x.pdf")
    for args, message in [
        (["sheets", "--category", "unit", "--reviewer", "nobody"], "找不到用户"),
        (["sheets", "--category", "unit", "--reviewer", "chair"], "不是评审专家"),
        (["list", "--category", "unit", "--round", "2019"], "找不到 2019 年"),
        (["forms", "--category", "unit", "--nomination", "999999"], "找不到该推荐对象"),
        (["forms", "--category", "unit", "--format", "xlsx"], "xlsx"),
        (["list", "--category", "nope"], "nope"),
    ]:
        result = runner.invoke(args=["reports", *args, "--out", target])
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)
    assert not os.path.exists(target)


def test_demo_seed_final_leaves_a_finalized_round_with_everything(app, tmp_path):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo", "seed", "--stage", "final", "--no-photos"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        rnd = db.session.scalar(select(Round))
        assert rnd.phase == "final" and rnd.finalized_at is not None and rnd.approval_date is not None
        assert rnd.seal_file and os.path.isfile(storage.path_of(rnd.seal_file))
        assert db.session.scalar(select(func.count(Decision.id)).where(Decision.opinion == "")) == 0
        assert decisions.undecided_count(rnd.id) == 0
        for category in ("unit", "activity"):
            assert decisions.approved_count(rnd.id, category) == rnd.slots(category)
        actions = set(db.session.scalars(select(AuditEvent.action)))
        assert {"decision.prefill", "round.seal", "round.phase"} <= actions
    target = tmp_path / "final-list.pdf"
    result = runner.invoke(args=["reports", "list", "--category", "unit", "--out", str(target)])
    assert result.exit_code == 0, result.output
    text = _text(target)
    assert "2024年全国科普日优秀组织单位名单" in text and "讨论稿" not in text and "公示稿" not in text
