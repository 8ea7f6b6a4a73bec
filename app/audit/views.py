"""The audit log viewer: newest first, filters, readable before → after, pages, CSV export."""

from __future__ import annotations

from flask import Response, request, stream_with_context

from app.audit import queries as audit_log
from app.audit.blueprint import bp
from app.audit.forms import AuditFilterForm
from app.audit.forms import parse as parse_filters
from app.core.authz import admin_required
from app.core.htmx import render
from app.core.params import parse_int
from app.core.time import file_stamp


def _page_number() -> int:
    text = request.args.get("page", "1")
    return parse_int(text, lo=1, hi=999_999, default=1)


@bp.route("/audit")
@admin_required
def audit():
    form = AuditFilterForm(formdata=request.args)
    form.validate()  # a GET: nothing is written, so validate_on_submit's POST-only rule does not apply
    filters, errors = form.filters(), form.first_errors()
    result = audit_log.search(filters, _page_number())
    return render("audit/audit.html", "results", status=422 if errors else 200, result=result, filters=filters,
                  args=filters.as_args(), errors=errors, form=form, choices=audit_log.choices(), system=audit_log.SYSTEM)


@bp.route("/audit.csv")
@admin_required
def audit_csv():
    filters, _ = parse_filters(request.args)
    name = f"audit-{file_stamp()}.csv"  # Beijing time, like every time inside the file
    return Response(stream_with_context(audit_log.export_csv(filters)), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={name}"})
