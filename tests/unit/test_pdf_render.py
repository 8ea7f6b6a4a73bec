"""PDF renderer: CJK output, font subsetting, and the locked-down URL fetcher.

Self-contained (no conftest): builds its own minimal Flask app.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from PIL import Image  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from app.reports.pdf import (  # noqa: E402
    STATIC_BASE_URL,
    STATIC_DIR,
    RefusedURL,
    SafeFetcher,
    render_pdf,
    render_pdf_template,
)

FONT_DIR = ROOT / "static" / "fonts"
REGULAR_TTF = FONT_DIR / "NotoSerifSC-Regular.ttf"
SUBSET_FONT_RE = re.compile(r"^/[A-Z]{6}\+Noto-?Serif-?SC(-Bold)?$")


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def flask_app():
    return Flask(
        "pdf_test",
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages)


def _font_names(pdf: bytes) -> set[str]:
    names = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        fonts = page["/Resources"].get("/Font", {})
        for ref in fonts.values():
            names.add(str(ref.get_object()["/BaseFont"]))
    return names


def _image_count(pdf: bytes) -> int:
    return sum(len(page.images) for page in PdfReader(io.BytesIO(pdf)).pages)


def _png_bytes(color=(200, 0, 0, 255), size=(64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _html(body: str, head: str = "") -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"{head}</head><body>{body}</body></html>"
    )


@pytest.fixture()
def static_tmp():
    """A throwaway folder under static/ (the only place the fetcher serves)."""
    path = STATIC_DIR / "_test_tmp" / uuid.uuid4().hex
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        try:
            path.parent.rmdir()  # only if empty (parallel runs may share it)
        except OSError:
            pass


@pytest.fixture()
def recording_server():
    """Loopback HTTP server that records every request it receives."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            body = _png_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------- output


def test_fonts_are_vendored_ttf():
    for name in ("NotoSerifSC-Regular.ttf", "NotoSerifSC-Bold.ttf"):
        head = (FONT_DIR / name).read_bytes()[:4]
        assert head in (b"\x00\x01\x00\x00", b"true"), f"{name} is not a TTF"
    assert (FONT_DIR / "OFL.txt").read_text(encoding="utf-8").count("SIL OPEN FONT LICENSE") >= 1
    assert "NotoSerifSC-Regular.ttf" in (FONT_DIR / "SHA256SUMS").read_text()


def _rows(n):
    return [
        {"name": f"第{i}届社区科普讲座——走进人工智能与生活", "org": "北京市科学技术协会", "score": 90 + i % 10}
        for i in range(1, n + 1)
    ]


@pytest.fixture(scope="module")
def long_pdf(flask_app):
    with flask_app.app_context():
        return render_pdf_template(
            "pdf/_demo_sample.html", rows=_rows(200), subtitle="（2024年全国科普日）", seal=None
        )


def test_chinese_text_and_page_footer(long_pdf):
    assert long_pdf.startswith(b"%PDF-")
    text = _text(long_pdf)
    for expected in ("测试文档", "2024年全国科普日", "北京市科学技术协会", "第200届社区科普讲座", "第 1 页 共"):
        assert expected in text, expected
    pages = len(PdfReader(io.BytesIO(long_pdf)).pages)
    assert 1 < pages < 20
    assert f"第 {pages} 页 共 {pages} 页" in text


def test_header_row_repeats_on_every_page(long_pdf):
    reader = PdfReader(io.BytesIO(long_pdf))
    for page in reader.pages:
        assert "序号" in page.extract_text()


def test_fonts_are_subset_cjk(long_pdf):
    names = _font_names(long_pdf)
    assert names, "no fonts embedded"
    for name in names:
        assert SUBSET_FONT_RE.match(name), f"unexpected font {name!r} (not a Noto Serif SC subset)"
    assert any(n.endswith("-Bold") for n in names), names  # title / th use the bold face
    # A ~15 MB TTF, subset to the few hundred glyphs used.
    assert len(long_pdf) < 1_000_000
    assert len(long_pdf) * 20 < REGULAR_TTF.stat().st_size


def test_render_pdf_without_app_context():
    pdf = render_pdf(_html('<h1 class="doc-title">无应用上下文</h1>'))
    assert "无应用上下文" in _text(pdf)


def test_concurrent_renders(flask_app):
    results: list[bytes] = []

    def work(i):
        results.append(render_pdf(_html(f"<p>并发渲染 {i}</p>")))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 3
    texts = "\n".join(_text(p) for p in results)
    for i in range(3):
        assert f"并发渲染 {i}" in texts


# ---------------------------------------------------------------- speed settings (docs/benchmarks.md §4)


def test_user_agent_sheet_is_the_lean_one_and_lists_keep_their_markers():
    """WeasyPrint's html5_ua.css minus its universal pseudo-element rules: if an upgrade changes those
    lines, pdf.py falls back to the sheet as shipped (slow) — this test says so."""
    import gc

    from weasyprint import HTML

    from app.reports import pdf

    stock = HTML(string="<p></p>")._ua_stylesheets()[0]
    lean = pdf._HTML(string="<p></p>")._ua_stylesheets()[0]
    assert lean is not stock and lean is pdf._HTML(string="<p></p>")._ua_stylesheets()[0]
    universal = [entry for entry in lean.matcher.other_selectors if entry[3]]  # (…, pseudo-element, …)
    assert universal == [], "a rule still matches every element's pseudo-element"
    text = _text(render_pdf(_html("<ol><li>第一项</li><li>第二项</li></ol>")))
    assert "1." in text and "2." in text and "第二项" in text
    assert gc.get_threshold()[0] < pdf._GC_THRESHOLD  # only relaxed while rendering


def test_collector_is_relaxed_while_rendering_and_restored_after(monkeypatch):
    import gc

    from app.reports import pdf

    seen = []
    real = pdf._HTML.render

    def spying(self, *args, **kwargs):
        seen.append(gc.get_threshold())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pdf._HTML, "render", spying)
    before = gc.get_threshold()
    gate = threading.Barrier(2, timeout=60)
    outer_done = []

    def outer():
        with pdf._relaxed_gc():
            gate.wait()  # the other render starts while this one holds the collector relaxed
            gate.wait()
        outer_done.append(gc.get_threshold())

    t = threading.Thread(target=outer)
    t.start()
    gate.wait()
    render_pdf(_html("<p>回收</p>"))
    assert gc.get_threshold()[0] == pdf._GC_THRESHOLD, "the other render still runs"
    gate.wait()
    t.join(60)
    assert seen and seen[0][0] == pdf._GC_THRESHOLD
    assert outer_done == [before] and gc.get_threshold() == before


# ---------------------------------------------------------------- security


def test_hostile_urls_are_refused_without_io(recording_server, caplog):
    port, requests = recording_server
    passwd = Path("/etc/passwd").read_text(errors="replace")
    marker = passwd.splitlines()[0]  # e.g. "root:x:0:0:root:/root:/bin/bash"
    base = f"http://127.0.0.1:{port}"
    html = _html(
        head=(
            '<link rel="stylesheet" href="file:///etc/passwd">'
            f'<link rel="stylesheet" href="{base}/style.css">'
            "<style>"
            f"@font-face {{ font-family: Evil; src: url({base}/font.ttf); }}"
            f".bg {{ background-image: url({base}/bg.png); }}"
            "@import url(data:text/css,body{color:red});"
            "</style>"
        ),
        body=(
            "<p>安全测试</p>"
            '<img src="file:///etc/passwd">'
            f'<img src="{base}/x.png">'
            '<img src="../../etc/passwd">'
            '<img src="/static/../../etc/passwd">'
            '<img src="/static/%2e%2e/%2e%2e/etc/passwd">'
            '<div class="bg" style="font-family: Evil">x</div>'
            '<object data="file:///etc/passwd"></object>'
            '<embed src="file:///etc/passwd">'
        ),
    )
    with caplog.at_level(logging.WARNING):
        pdf = render_pdf(html)

    assert pdf.startswith(b"%PDF-")
    text = _text(pdf)
    assert "安全测试" in text
    assert marker not in text and "root:x:0:0" not in text
    assert b"root:x:0:0" not in pdf
    assert _image_count(pdf) == 0
    assert requests == [], f"renderer made network requests: {requests}"
    refused = "\n".join(r.getMessage() for r in caplog.records if "refused URL" in r.getMessage())
    for url in ("file:///etc/passwd", f"{base}/x.png", f"{base}/style.css", f"{base}/bg.png", f"{base}/font.ttf"):
        assert url in refused, f"{url} was not seen and refused by the fetcher"
    assert "kepu-pdf.invalid/etc/passwd" in refused  # ../../etc/passwd, normalised by urljoin


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "http://127.0.0.1:9/x.png",
        "https://example.com/x.png",
        "ftp://example.com/x",
        STATIC_BASE_URL + "../../etc/passwd",
        STATIC_BASE_URL + "%2e%2e/%2e%2e/etc/passwd",
        STATIC_BASE_URL + "..%2f..%2fetc/passwd",
        STATIC_BASE_URL + "fonts%00.ttf",
        STATIC_BASE_URL + "fonts/",  # directory
        STATIC_BASE_URL + "does-not-exist.png",
        "https://kepu-pdf.invalid/etc/passwd",  # right host, outside /static/
        "https://kepu-pdf.invalid:8443/static/css/pdf.css",  # wrong origin
        "https://evil.example/static/css/pdf.css",
        "kepu-file:not-provided.png",
        "data:text/html,<b>x</b>",
        "data:image/svg+xml,<svg/>",
    ],
)
def test_fetcher_refuses(url):
    with pytest.raises(RefusedURL):
        SafeFetcher().fetch(url)


def test_fetcher_refuses_symlink_out_of_static(static_tmp):
    link = static_tmp / "passwd.png"
    os.symlink("/etc/passwd", link)
    rel = link.relative_to(STATIC_DIR).as_posix()
    with pytest.raises(RefusedURL):
        SafeFetcher().fetch(STATIC_BASE_URL + rel)


def test_fetcher_serves_static_file():
    resp = SafeFetcher().fetch(STATIC_BASE_URL + "css/pdf.css")
    assert resp.content_type == "text/css"
    assert b"@font-face" in resp.read()


# ---------------------------------------------------------------- allowed images


def test_image_under_static_is_embedded(static_tmp):
    (static_tmp / "seal.png").write_bytes(_png_bytes())
    rel = (static_tmp / "seal.png").relative_to(STATIC_DIR).as_posix()
    for src in (f"/static/{rel}", rel):  # absolute-path and base-relative forms
        pdf = render_pdf(_html(f'<p>印章</p><img class="seal" src="{src}">'))
        assert _image_count(pdf) == 1, src


def test_seal_from_extra_files_in_template(flask_app):
    """Files kept outside static/ (e.g. instance/uploads) come in as bytes."""
    with flask_app.app_context():
        pdf = render_pdf_template(
            "pdf/_demo_sample.html",
            rows=_rows(3),
            subtitle="印章",
            seal="kepu-file:seal.png",
            extra_files={"seal.png": _png_bytes()},
        )
    assert _image_count(pdf) == 1
    assert "2024年9月30日" in _text(pdf)


def test_data_image_is_allowed():
    import base64

    src = "data:image/png;base64," + base64.b64encode(_png_bytes()).decode()
    pdf = render_pdf(_html(f'<img src="{src}">'))
    assert _image_count(pdf) == 1
