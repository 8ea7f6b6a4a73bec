"""The mail area's background task: SMTP delivery of one outbox row, in the job consumer (`flask jobs
worker`), never in the gunicorn worker that answered the request. Registered through JOB_TASK_MODULES."""

from __future__ import annotations

from flask import Flask
from huey import Huey

# A failed attempt is retried this many times, MAIL_RETRY_DELAY seconds apart; after that the row says
# 发送失败 with the error, and the admin's 重新发送 queues it again.
RETRIES = 3


def register(huey: Huey, app: Flask) -> dict:
    @huey.task(name="kepu.mail.deliver", retries=RETRIES, retry_delay=int(app.config.get("MAIL_RETRY_DELAY") or 60))
    def deliver_message(message_id: int) -> None:
        from app.mail.delivery import deliver

        with app.app_context():
            deliver(message_id)

    return {"mail_deliver": deliver_message}
