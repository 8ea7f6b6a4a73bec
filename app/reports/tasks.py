"""The reports area's background tasks, registered on each app's Huey (app/jobs builds it and calls
register() of every module in JOB_TASK_MODULES). Each closes over the app it was built for: the consumer
creates the app once and every task pushes a fresh app context of it (its own database session)."""

from __future__ import annotations

import logging

from flask import Flask
from huey import Huey, crontab
from huey.signals import SIGNAL_INTERRUPTED

from app.reports import jobs

log = logging.getLogger(__name__)


def on_worker_start(app: Flask) -> None:
    """In `flask jobs worker`, before it takes tasks: load the PDF fonts and stylesheets into a renderer
    (the first document of a process would pay ~0.6 s for it), and keep WeasyPrint's one-line-per-page
    progress messages out of the consumer's log."""
    from app.reports import pdf

    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
    with app.app_context():
        pdf.render_pdf("<p>预热 0123456789</p>")


def register(huey: Huey, app: Flask) -> dict:
    # retries=0: a render that failed once fails the same way again; the user retries from the page.
    @huey.task(name="kepu.reports.render", retries=0)
    def render_report(job_id: str) -> None:
        with app.app_context():
            jobs.run(job_id)

    @huey.task(name="kepu.reports.render_part", retries=0)
    def render_part(job_id: str, index: int, ids: list[int], first: int, pages: int, total: int,
                    generation: int = 0) -> None:
        with app.app_context():  # one part of a batch split across the consumers
            jobs.run_part(job_id, index, ids, first, pages, total, generation)

    @huey.periodic_task(crontab(minute="*/15"), name="kepu.reports.prune")
    def prune_reports() -> None:
        with app.app_context():
            jobs.prune()

    @huey.signal(SIGNAL_INTERRUPTED)
    def interrupted(signal, task, *args, **kwargs) -> None:
        # The consumer was stopped (SIGTERM) in the middle of a render: say so now rather than letting
        # the heartbeat go stale. A SIGKILL gets no such chance; the stale heartbeat covers it.
        if task.name != render_report.name or not task.args:
            return
        with app.app_context():
            jobs.mark_interrupted(task.args[0])

    return {"render_report": render_report, "render_part": render_part, "prune_reports": prune_reports}
