"""Background jobs on huey. One Huey per app, built from config the first time it is needed:

* ``JOBS_URL=redis://…`` → RedisHuey: one queue for consumers on several machines (production).
* otherwise → SqliteHuey in ``JOBS_FOLDER`` (default: the instance folder), shared by gunicorn and
  ``flask jobs worker`` on one machine, with nothing else to install.
* ``JOBS_IMMEDIATE`` (default: on when TESTING) → a task runs inside the call that queues it, on
  huey's in-memory storage: unit and web tests need no consumer.

Tasks live in their area (app/reports/tasks.py) and are registered by the modules the app lists in
JOB_TASK_MODULES, so this package knows no area. They run in the consumer process, which creates the Flask app once; each task
runs inside an app context of that app. Job records and outputs are not huey's business: see
app/reports/jobs.py. Huey's own key/value store (Redis or the SQLite file) holds only the job-key
claims that make two identical requests one job, because it is the one store every web process and
consumer on every machine already shares atomically.
"""

from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass, field

from flask import Flask, current_app
from huey import Huey, RedisHuey, SqliteHuey
from huey.api import TaskWrapper

EXTENSION = "kepu_jobs"
QUEUE_NAME = "kepu"
_build_lock = threading.Lock()


@dataclass
class Jobs:
    huey: Huey
    tasks: dict[str, TaskWrapper] = field(default_factory=dict)


def build(app: Flask) -> Jobs:
    url = app.config.get("JOBS_URL") or ""
    immediate = app.config.get("JOBS_IMMEDIATE")
    if immediate is None:
        immediate = bool(app.config.get("TESTING"))
    # results=False: a task's outcome goes to its job record; nobody blocks on a huey result.
    options = {"results": False, "immediate": bool(immediate)}
    if url.startswith(("redis://", "rediss://", "unix://")):
        huey: Huey = RedisHuey(QUEUE_NAME, url=url, **options)
    elif not url or url.startswith("sqlite:///"):
        filename = url[len("sqlite:///"):] or os.path.join(
            app.config.get("JOBS_FOLDER") or app.instance_path, "jobs.sqlite3")
        if not immediate:
            os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
        huey = SqliteHuey(QUEUE_NAME, filename=filename, **options)
    else:
        raise RuntimeError(f"不支持的 JOBS_URL：{url}（应为 redis://… 或 sqlite:///…）")

    jobs = Jobs(huey=huey)
    for name in app.config.get("JOB_TASK_MODULES", ()):
        jobs.tasks.update(importlib.import_module(name).register(huey, app))
    return jobs


def get_jobs(app: Flask | None = None) -> Jobs:
    app = app or current_app._get_current_object()
    jobs = app.extensions.get(EXTENSION)
    if jobs is None:
        with _build_lock:
            jobs = app.extensions.get(EXTENSION)
            if jobs is None:
                jobs = app.extensions[EXTENSION] = build(app)
    return jobs


def get_huey(app: Flask | None = None) -> Huey:
    return get_jobs(app).huey
