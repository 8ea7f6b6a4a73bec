"""HTML -> PDF with WeasyPrint, locked down so rendering never touches the
network or any file outside ``static/``.

URL scheme (what templates may reference)
-----------------------------------------
* The document's base URL is the fake origin ``https://kepu-pdf.invalid/static/``
  (``.invalid`` is a reserved TLD: it can never resolve). So these all work and
  are served from the project's ``static/`` directory:
      ``/static/fonts/x.ttf``   ``fonts/x.ttf``   ``../fonts/x.ttf`` (from pdf.css)
  We use an http-like fake origin rather than a custom scheme because
  ``urllib.parse.urljoin`` only resolves relative URLs for known schemes.
  The fetcher never opens a socket: it maps that origin's ``/static/`` path to
  the directory and checks the *resolved* path (symlinks followed) stays inside.
* ``kepu-file:NAME`` serves ``extra_files[NAME]`` (bytes) passed to this render
  only. This is how files stored outside static/ (e.g. seal PNGs under
  instance/uploads) get in: the caller reads the file it trusts and hands over
  bytes; the template writes ``<img src="kepu-file:seal.png">``.
* ``data:image/png|jpeg|gif|webp`` is allowed (self-contained, no I/O). Other
  ``data:`` types are refused.
* Everything else (``file:``, ``http(s):`` to any other host, other ``data:``
  types, paths escaping static/) is refused: WeasyPrint logs a warning and
  renders without the resource.
"""

from __future__ import annotations

import base64
import gc
import logging
import mimetypes
import os
import re
import threading
from collections.abc import Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, unquote_to_bytes, urlsplit
from xml.etree import ElementTree  # nosec B405 — parses only our own template output, see _xhtml_tree

import cssselect2
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
_ORIGIN = "https://kepu-pdf.invalid"
STATIC_BASE_URL = f"{_ORIGIN}/static/"
EXTRA_SCHEME = "kepu-file:"
_STYLESHEET = "css/pdf.css"
_DATA_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}

# Written to the PDF: keep embedded images small without visible loss, cap
# resolution (a 300 dpi seal is plenty), and subset fonts (full_fonts=False,
# WeasyPrint's default) so a ~15 MB CJK TTF becomes a few hundred KB.
_PDF_OPTIONS = {
    "optimize_images": True,
    "jpeg_quality": 85,
    "dpi": 300,
    "full_fonts": False,
    "hinting": False,
    # No template uses presentational attributes (<col width>, <td align>): layout is pdf.css's alone,
    # and the hints stylesheet would be matched against every element of every document.
    "presentational_hints": False,
}

# WeasyPrint's HTML user-agent stylesheet as shipped, except for its universal pseudo-element rules
# (``::marker``, ``::footnote-call``, ``::footnote-marker``, ``::note-call``, ``::note-marker``,
# ``::note-callback``): a rule that matches every element makes WeasyPrint compute that pseudo-element's
# style for every element, so six of every seven styles it computed were for boxes no document of ours
# has. ``::marker`` is kept for the one element the sheet makes a list item (``li``); the note rules are
# dropped: no template uses ``float: footnote`` or notes (one that does must put its own
# ``::footnote-call``/``::footnote-marker`` rules in pdf.css). If a WeasyPrint upgrade changes those
# lines, the sheet is used as shipped (slower, same output) and tests/unit/test_pdf_render.py fails.
_UA_NOTE_RULES = re.compile(r"^::(?:footnote|note)-[a-z]+ \{[^\n]*\}\n", re.M)
_UA_MARKER_RULE = "\n::marker {"
_ua_lock = threading.Lock()
_ua_sheets: dict[int, CSS] = {}  # id of WeasyPrint's own sheet -> ours


def _lean_ua_stylesheet(stock: CSS) -> CSS:
    with _ua_lock:
        lean = _ua_sheets.get(id(stock))
        if lean is None:
            lean = _ua_sheets[id(stock)] = _leaner(stock)
        return lean


def _leaner(stock: CSS) -> CSS:
    try:
        from weasyprint.css.counters import CounterStyle

        text = (resources.files("weasyprint.css") / "html5_ua.css").read_text(encoding="utf-8")
        text, dropped = _UA_NOTE_RULES.subn("", text)
        if dropped != 5 or text.count(_UA_MARKER_RULE) != 1:
            raise ValueError("not the html5_ua.css pdf.py knows")
        # The @counter-style rules register into a throw-away map: WeasyPrint's own map already holds the
        # same ones and every document starts from a copy of it.
        return CSS(string=text.replace(_UA_MARKER_RULE, "\nli::marker {"), counter_style=CounterStyle())
    except Exception:  # noqa: BLE001 — any surprise: WeasyPrint's own sheet, slower but the same output
        log.warning("WeasyPrint's html5_ua.css is not the one pdf.py knows; using it as shipped", exc_info=True)
        return stock


class _HTML(HTML):
    """weasyprint.HTML with the lean user-agent stylesheet."""

    def _ua_stylesheets(self, forms=False):
        stock = super()._ua_stylesheets(forms)
        return [_lean_ua_stylesheet(stock[0]), *stock[1:]]

    @classmethod
    def parsed(cls, html: str, fetcher: SafeFetcher, *, xhtml: bool = False) -> _HTML:
        """The document, parsed by expat when `xhtml` and it is XHTML that the HTML parser would build
        the same tree from (a tenth of tinyhtml5's time, which is pure Python: 4% of a batch of 推荐表);
        by WeasyPrint's HTML parser otherwise."""
        root = _xhtml_tree(html) if xhtml and _builds_like_weasyprint() else None
        if root is None:
            return cls(string=html, base_url=STATIC_BASE_URL, url_fetcher=fetcher)
        return cls._from_tree(root, fetcher)

    @classmethod
    def _from_tree(cls, root, fetcher) -> _HTML:
        document = cls.__new__(cls)
        # What HTML.__init__ sets once it has parsed (no <base> in our templates).
        document.base_url, document.url_fetcher, document.media_type = STATIC_BASE_URL, fetcher, "print"
        document.wrapper_element = cssselect2.ElementWrapper.from_html_root(root, content_language=None)
        document.etree_element = document.wrapper_element.etree_element
        return document


_built_alike: bool | None = None


def _builds_like_weasyprint() -> bool:
    """Does _HTML._from_tree set every attribute weasyprint.HTML.__init__ sets? Checked once, so a
    WeasyPrint that keeps more state on a document turns the expat path off instead of breaking."""
    global _built_alike
    if _built_alike is None:
        fetcher = SafeFetcher()
        stock = set(vars(HTML(string="<p></p>", base_url=STATIC_BASE_URL, url_fetcher=fetcher)))
        ours = set(vars(_HTML._from_tree(ElementTree.fromstring("<html><body/></html>"), fetcher)))  # nosec B314
        _built_alike = stock == ours
        if not _built_alike:
            log.warning("weasyprint.HTML keeps %s: parsing every document with its own parser", stock ^ ours)
    return _built_alike


_DOCTYPE = re.compile(r"\A\s*<!doctype html>", re.I)
# Blocks the HTML parser would not leave inside a paragraph (it closes the paragraph first).
_BLOCKS = frozenset({"address", "article", "aside", "blockquote", "div", "dl", "fieldset", "figure", "footer",
                     "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "main", "nav", "ol", "p", "pre",
                     "section", "table", "ul"})


def _xhtml_tree(html: str):
    """The element tree of `html` if expat and the HTML parser build the same one from it, else None.
    Our templates' output only: every value in it is escaped by Jinja, so no DOCTYPE or entity
    declaration can come from user text (and any `<!` after the leading doctype sends it to the HTML
    parser)."""
    markup = _DOCTYPE.sub("", html, count=1)
    if "<!" in markup:
        return None
    try:
        root = ElementTree.fromstring(markup)  # nosec B314 — see the docstring
    except ElementTree.ParseError:
        return None  # not XML: a template written as plain HTML, a control character in a value
    # Rows or columns straight in a table: the HTML parser would add the <tbody>/<colgroup>.
    if root.tag != "html" or root.find(".//table/tr") is not None or root.find(".//table/col") is not None:
        return None
    for paragraph in root.iter("p"):
        if any(child.tag in _BLOCKS for child in paragraph.iter() if child is not paragraph):
            return None
    return root


# WeasyPrint allocates millions of short-lived objects per document (boxes, styles, Pango wrappers), and
# with Python's default thresholds the cyclic collector ran hundreds of times during one 50-form part,
# its older generations walking the whole process each time: a quarter of the render's CPU. While any
# render runs, a collection waits for _GC_THRESHOLD allocations instead of 700 (~10 MB more at the peak
# of a 50-form part); the previous thresholds come back when the last render ends. Process-wide, as the
# collector is: a counter, not a flag, so two threads rendering at once do not undo each other.
_GC_THRESHOLD = 100_000
_gc_lock = threading.Lock()
_gc_renders = 0
_gc_saved: tuple[int, ...] = ()


@contextmanager
def _relaxed_gc():
    global _gc_renders, _gc_saved
    with _gc_lock:
        if _gc_renders == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(_GC_THRESHOLD, _gc_saved[0]), *_gc_saved[1:])
        _gc_renders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_renders -= 1
            if _gc_renders == 0:
                gc.set_threshold(*_gc_saved)


# A renderer is one FontConfiguration plus pdf.css parsed against it. Building one scans system fonts,
# and the @font-face TTFs it loads are cached inside it (keyed by the rule), so reusing it avoids
# re-reading 30 MB of fonts for every document. Pango/fontconfig objects are not documented as safe to
# use from two threads at once, so a renderer is checked out by one render at a time; but a process
# keeps up to PDF_RENDERERS of them, so a small 推荐表 in one gthread thread is not serialised behind a
# long render in another (big documents render in the job consumer anyway, see app/jobs). Separate
# FontConfigurations share no Pango font map, which is the way Pango (>= 1.32) supports threads.
# Two per process: each costs ~40 MB once its fonts are loaded, and a web process only renders
# one-form/one-sheet PDFs (~1 s).
PDF_RENDERERS = 2


class _Renderer:
    def __init__(self):
        self.font_config = FontConfiguration()
        self._css: tuple[int, CSS] | None = None  # (mtime_ns of pdf.css, parsed CSS)

    def stylesheet(self) -> CSS:
        """pdf.css parsed once per renderer, re-parsed if the file changes (dev)."""
        css_path = STATIC_DIR / _STYLESHEET
        mtime = css_path.stat().st_mtime_ns
        if self._css is None or self._css[0] != mtime:
            css = CSS(
                string=css_path.read_text(encoding="utf-8"),
                base_url=STATIC_BASE_URL + _STYLESHEET,
                url_fetcher=SafeFetcher(),
                font_config=self.font_config,
            )
            self._css = (mtime, css)
        return self._css[1]


_POOL_LOCK = threading.Lock()
_idle: list[_Renderer] = []
_available = threading.BoundedSemaphore(PDF_RENDERERS)


@contextmanager
def _renderer():
    with _available:
        with _POOL_LOCK:
            renderer = _idle.pop() if _idle else None
        if renderer is None:
            renderer = _Renderer()
        try:
            yield renderer
        finally:
            with _POOL_LOCK:
                _idle.append(renderer)


class RefusedURL(ValueError):
    """Raised by the fetcher; WeasyPrint catches it and skips the resource."""


class SafeFetcher(URLFetcher):
    """Serves static/ files, per-render extra files and raster data: images.

    Subclasses URLFetcher only for the attributes WeasyPrint reads
    (``_fail_on_errors``); ``fetch`` is fully overridden so urllib's HTTP/FTP/
    file handlers set up by the parent are never reached.
    """

    def __init__(self, extra_files: Mapping[str, bytes] | None = None):
        super().__init__(fail_on_errors=False)
        self._extra = dict(extra_files or {})
        self._static_root = os.path.realpath(STATIC_DIR)

    def fetch(self, url, headers=None):
        try:
            return self._fetch(url)
        except RefusedURL as exc:
            log.warning("PDF renderer refused URL %.200s: %s", url, exc)
            raise

    def _fetch(self, url: str) -> URLFetcherResponse:
        if url.startswith(EXTRA_SCHEME):
            name = unquote(url[len(EXTRA_SCHEME):])
            if name not in self._extra:
                raise RefusedURL("unknown extra file")
            return self._response(url, self._extra[name], name)

        if url[:5].lower() == "data:":
            header, sep, payload = url[5:].partition(",")
            media_type = header.split(";")[0].strip().lower()
            if not sep or media_type not in _DATA_IMAGE_TYPES:
                raise RefusedURL("only raster data:image URLs are allowed")
            raw = unquote_to_bytes(payload)
            body = base64.b64decode(raw) if header.lower().endswith(";base64") else raw
            return URLFetcherResponse(url, body, {"Content-Type": media_type})

        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}".lower() != _ORIGIN or not parts.path.startswith("/static/"):
            raise RefusedURL("not under the static origin")
        relative = unquote(parts.path[len("/static/"):])
        if "\x00" in relative:
            raise RefusedURL("NUL in path")
        path = os.path.realpath(os.path.join(self._static_root, relative))
        if os.path.commonpath([path, self._static_root]) != self._static_root:
            raise RefusedURL("path escapes static/")
        if not os.path.isfile(path):
            raise RefusedURL("no such static file")
        with open(path, "rb") as fh:
            return self._response(url, fh.read(), path)

    @staticmethod
    def _response(url: str, body: bytes, name: str) -> URLFetcherResponse:
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return URLFetcherResponse(url, body, {"Content-Type": content_type})


def render_pdf(html: str, *, extra_files: Mapping[str, bytes] | None = None, xhtml: bool = False) -> bytes:
    """Render an HTML string (already escaped by Jinja) to PDF bytes.

    ``extra_files`` maps NAME -> bytes, referenced as ``kepu-file:NAME``. ``xhtml``: the template is
    written as well-formed XML, so it may be parsed by expat (see _HTML.parsed).
    """
    return render_pdf_counted(html, extra_files=extra_files, xhtml=xhtml)[0]


def render_pdf_counted(html: str, *, extra_files: Mapping[str, bytes] | None = None,
                       xhtml: bool = False) -> tuple[bytes, int]:
    """render_pdf, and the number of pages, from the layout itself: reading it back from the PDF with
    pypdf costs a third of a second for a 50-page part."""
    with laid_out(html, extra_files=extra_files, xhtml=xhtml) as document:
        return document.write_pdf(**_PDF_OPTIONS), len(document.pages)


@contextmanager
def laid_out(html: str, *, extra_files: Mapping[str, bytes] | None = None, xhtml: bool = False):
    """The WeasyPrint Document of `html` (laid out, not written), while its renderer is checked out:
    for measuring a layout (app/reports/batch.py predicts the 目录's length from one). Text styles
    found in it belong to the renderer's fonts, so use them inside the block only."""
    fetcher = SafeFetcher(extra_files)
    with _renderer() as renderer, _relaxed_gc():
        yield _HTML.parsed(html, fetcher, xhtml=xhtml).render(
            font_config=renderer.font_config, stylesheets=[renderer.stylesheet()], **_PDF_OPTIONS)


def render_pdf_template(
    template_name: str, *, extra_files: Mapping[str, bytes] | None = None, **context
) -> bytes:
    """Flask ``render_template`` (needs an app context) then ``render_pdf``.

    ``extra_files`` is consumed here and not passed to the template.
    """
    from flask import render_template  # local: render_pdf itself needs no Flask

    return render_pdf(render_template(template_name, **context), extra_files=extra_files)
