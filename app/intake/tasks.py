"""The intake area's background task: 形式审查 of a round after an intake write, in the job consumer
(`flask jobs worker`, app/jobs), not in the gunicorn worker that answered the edit — a check of 7,000
nominations is a second or two of Python, and the reviewers' score saves served by the same worker
would wait for the interpreter meanwhile. Registered through JOB_TASK_MODULES."""

from __future__ import annotations

from flask import Flask
from huey import Huey


def register(huey: Huey, app: Flask) -> dict:
    # retries=0: the next intake write queues a check anyway, and the move to 专家评审 recomputes.
    @huey.task(name="kepu.intake.form_check", retries=0)
    def form_check_round(round_id: int, actor_id: int | None = None) -> None:
        from app.intake import form_check

        with app.app_context():
            form_check.run_queued(round_id, actor_id)

    return {"form_check": form_check_round}
