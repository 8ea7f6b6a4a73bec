"""`flask jobs worker`: the consumer that renders queued documents, beside gunicorn (scripts/run) or
as a systemd service on any number of machines sharing KEPU_JOBS_URL (docs/deploy.md)."""

from __future__ import annotations

import importlib
import logging

import click
from flask import current_app
from flask.cli import AppGroup

jobs_cli = AppGroup("jobs", help="后台任务（生成 PDF 等大文档）。")


@jobs_cli.command("worker")
@click.option("--workers", "-w", type=click.IntRange(1, 32), default=1, show_default=True,
              help="本进程同时执行的任务数（线程）。多开进程或多台机器同样可以扩展。")
def worker_command(workers: int):
    """启动任务消费进程；Ctrl+C（SIGINT）等当前任务完成后退出，SIGTERM 立即退出。"""
    from app.jobs import get_jobs

    app = current_app._get_current_object()
    jobs = get_jobs(app)
    if jobs.huey.immediate:
        raise click.ClickException("JOBS_IMMEDIATE 模式下任务随提交立即执行，不需要也不能启动消费进程。")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Each task module may get ready before the first task arrives (e.g. load the PDF fonts), so the
    # first job does not pay for it.
    for name in app.config.get("JOB_TASK_MODULES", ()):
        started = getattr(importlib.import_module(name), "on_worker_start", None)
        if started is not None:
            started(app)
    # max_delay 1 s: SqliteHuey is polled, and a queued job should start within a second or so
    # (RedisHuey blocks on the list and starts at once anyway).
    consumer = jobs.huey.create_consumer(workers=workers, worker_type="thread", periodic=True,
                                         initial_delay=0.1, backoff=1.15, max_delay=1.0,
                                         check_worker_health=True)
    click.echo(f"任务消费进程已启动（{workers} 个线程，队列 {type(jobs.huey).__name__}）。", err=True)
    consumer.run()
