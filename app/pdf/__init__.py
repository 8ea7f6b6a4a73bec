"""PDF rendering (WeasyPrint, A4, GB/T 9704-style official documents).

Public API:
    render_pdf(html, *, extra_files=None) -> bytes
    render_pdf_template(template_name, *, extra_files=None, **context) -> bytes

See render.py for the URL scheme templates must use for static files
(``/static/...``) and per-render files such as seal images (``kepu-file:NAME``).
"""

from app.pdf.render import (
    EXTRA_SCHEME,
    STATIC_BASE_URL,
    STATIC_DIR,
    render_pdf,
    render_pdf_template,
)

__all__ = [
    "EXTRA_SCHEME",
    "STATIC_BASE_URL",
    "STATIC_DIR",
    "render_pdf",
    "render_pdf_template",
]
