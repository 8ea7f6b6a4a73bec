"""Every area's command group, registered on the app (each lives in its area's cli.py)."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from app.accounts.cli import users_cli
    from app.demo.cli import demo_cli
    from app.intake.cli import nominations_cli
    from app.jobs.cli import jobs_cli
    from app.mail.cli import mail_cli
    from app.ops.cli import ops_commands
    from app.ranking.cli import ranking_cli
    from app.reports.cli import reports_cli
    from app.stats.cli import stats_cli
    from app.tus.cli import tus_cli

    for group in (users_cli, demo_cli, nominations_cli, reports_cli, jobs_cli, tus_cli, stats_cli, ranking_cli,
                  mail_cli, *ops_commands):
        app.cli.add_command(group)
