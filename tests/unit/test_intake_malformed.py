"""Files as offices really send them: archives inside archives are vetted before anything is parsed,
and a truncated or malformed file of every accepted type gets a Chinese message, never an exception."""

from __future__ import annotations

import io
import zipfile

import pytest

from app.core.errors import UserError
from app.intake import importer, uploads, zip_reader
from app.intake.docx_reader import read_docx
from app.intake.parsed import ReadError
from app.intake.xlsx_reader import read_xlsx
from tests import intake_fixtures
from tests.intake_fixtures import make_form_docx, make_image, make_mp4, make_webm, make_xlsx, make_zip

intake_app = intake_fixtures.intake_app


def _with_member(package: bytes, name: str, data: bytes) -> bytes:
    """The package (a .docx / .xlsx) with one more, deflated part."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr(name, data)
    return out.getvalue()


ZEROS = b"\x00" * (20 * 1024 * 1024)  # deflates about 1000:1


def _docx_bomb() -> bytes:
    return _with_member(make_form_docx("unit"), "word/media/image9.png", ZEROS)


def _xlsx_bomb() -> bytes:
    return _with_member(make_xlsx(["名称"], [["科普进社区"]]), "xl/media/image1.png", ZEROS)


@pytest.mark.parametrize("reader,bomb", [(read_docx, _docx_bomb), (read_xlsx, _xlsx_bomb)])
def test_a_docx_or_xlsx_is_vetted_like_a_zip_before_it_is_parsed(app_factory, monkeypatch, reader, bomb):
    import docx
    import openpyxl

    from app.intake import docx_reader, xlsx_reader

    data = bomb()

    def never(*_a, **_k):
        raise AssertionError("parsed before its archive was checked")

    monkeypatch.setattr(docx, "Document", never)
    monkeypatch.setattr(docx_reader.docx, "Document", never)
    monkeypatch.setattr(openpyxl, "load_workbook", never)
    monkeypatch.setattr(xlsx_reader, "load_workbook", never)
    with app_factory({"IMPORT_MAX_ZIP_BYTES": 100 * 1024 * 1024}).app_context():
        with pytest.raises(ReadError, match="压缩比异常（疑似压缩炸弹）"):
            reader(data, "推荐表")
    with app_factory({"IMPORT_MAX_ZIP_BYTES": 10 * 1024 * 1024}).app_context():
        with pytest.raises(ReadError, match="解压后超过 10 MB"):
            reader(data, "推荐表")


def test_a_docx_inside_a_zip_is_vetted_too(intake_app, tmp_path):
    path = tmp_path / "长沙市科协.zip"
    path.write_bytes(make_zip({"推荐表.docx": _docx_bomb(), "汇总.xlsx": _xlsx_bomb()}))
    with intake_app.app_context():
        reading = importer.read_sources([importer.Source("长沙市科协.zip", str(path))])
    assert reading.forms == []
    assert sorted(reading.file_errors) == sorted([
        "「长沙市科协.zip › 推荐表.docx」中的「word/media/image9.png」压缩比异常（疑似压缩炸弹），已拒绝。",
        "「长沙市科协.zip › 汇总.xlsx」中的「xl/media/image1.png」压缩比异常（疑似压缩炸弹），已拒绝。"])


def _corrupt(data: bytes) -> bytes:
    """Same length, the middle third overwritten: the archive's directory survives, its parts do not."""
    third = len(data) // 3
    return data[:third] + bytes(b ^ 0x5A for b in data[third:2 * third]) + data[2 * third:]


def _sources():
    docx_bytes = make_form_docx("unit", photos=[make_image("PNG")])
    xlsx_bytes = make_xlsx(["类别", "推荐单位", "名称"], [["优秀活动", "长沙市科协", "科普进社区"]])
    zip_bytes = make_zip({"推荐表.docx": docx_bytes, "照片.png": make_image("PNG")})
    return {"推荐表.docx": docx_bytes, "汇总.xlsx": xlsx_bytes, "材料.zip": zip_bytes}


@pytest.mark.parametrize("name", ["推荐表.docx", "汇总.xlsx", "材料.zip"])
@pytest.mark.parametrize("damage", ["truncated", "corrupt", "garbage", "empty"])
def test_a_damaged_import_file_is_reported_in_chinese(intake_app, tmp_path, name, damage):
    data = _sources()[name]
    data = {"truncated": data[: len(data) * 2 // 3], "corrupt": _corrupt(data),
            "garbage": b"PK\x03\x04" + b"\x13\x37" * 500, "empty": b""}[damage]
    path = tmp_path / name
    path.write_bytes(data)
    with intake_app.app_context():
        reading = importer.read_sources([importer.Source(name, str(path))])
        try:
            from sqlalchemy import select

            from app.models import Round

            items = importer.plan(reading, intake_app.extensions["sqlalchemy"].session.scalar(select(Round)))
        finally:
            reading.close()
    messages = reading.file_errors + [e for i in items for e in i.errors + i.warnings]
    assert reading.file_errors or any("损坏" in m or "不完整" in m for m in messages), messages
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in m) for m in reading.file_errors)
    # each message names the file, or the damaged part inside the archive
    assert all(name in m or "推荐表.docx" in m for m in reading.file_errors)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("cut", [0.3, 0.7, 0.95])
def test_a_truncated_photo_is_refused_in_chinese(intake_app, fmt, cut):
    data = make_image(fmt, size=(320, 240), color=(10, 200, 90))
    with intake_app.app_context():
        with pytest.raises(UserError) as e:
            uploads.check_photo(data[: int(len(data) * cut)], "现场.jpg")
    assert "现场.jpg" in e.value.message and ("损坏" in e.value.message or "不是有效" in e.value.message)


def _real_mp4(mdat: int = 4096) -> bytes:
    ftyp = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    moov = (16).to_bytes(4, "big") + b"moov" + b"\x00" * 8
    return ftyp + moov + (8 + mdat).to_bytes(4, "big") + b"mdat" + b"\x01" * mdat


def test_a_truncated_mp4_is_refused_and_a_whole_one_kept(intake_app):
    whole = _real_mp4()
    with intake_app.app_context():
        assert uploads.save_video_stream(io.BytesIO(whole), "现场.mp4")[1] == len(whole)
        assert uploads.save_video_stream(io.BytesIO(make_mp4()), "现场.mp4")[2] == "video/mp4"
        assert uploads.save_video_stream(io.BytesIO(make_webm()), "现场.webm")[2] == "video/webm"
        for cut in (len(whole) - 100, 30, 10):
            with pytest.raises(UserError) as e:
                uploads.save_video_stream(io.BytesIO(whole[:cut]), "现场.mp4")
            assert "现场.mp4" in e.value.message or "MP4" in e.value.message
        with pytest.raises(UserError, match="不完整"):
            uploads.save_video_stream(io.BytesIO(whole[:-100]), "现场.mp4")


def test_check_package_leaves_what_is_not_an_archive_to_its_reader(intake_app):
    with intake_app.app_context():
        zip_reader.check_package(b"not a zip at all", "x.docx")
        with pytest.raises(ReadError, match="不是 .docx 文件"):
            read_docx(b"not a zip at all", "x.docx")
