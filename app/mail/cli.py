"""`flask mail sweep`: hand messages stuck in 待发送 to delivery again.

A message is written `pending` in its operation's transaction and handed to the delivery job by the
after-commit hook (app/mail/outbox.py). When that hand-over fails — the job queue's Redis is down, the
process dies between the commit and the enqueue — the row stays `pending` and nothing would ever send
it: no job exists, and 重新发送 on the outbox page only offers failed messages. Run from cron (deploy.md)
a few minutes apart; it only takes rows older than the threshold, so a message whose job is merely
waiting in a busy queue is left alone, and delivery itself skips a row that is already sent or that
another delivery has claimed (发送中), so a message the job is sending right now is not sent twice.

A row stuck in 发送中 longer than MAIL_SENDING_STALE_MINUTES was claimed by a consumer that died
mid-send: it goes back to 待发送 and is queued again (the mail may have left just before the crash;
delivering it once more is preferred to losing it).
"""

from __future__ import annotations

from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import or_, select, update

from app.audit import operations as audit
from app.core.database import write_transaction
from app.mail.outbox import queue_after_commit
from app.models import OutboxMessage
from app.models._base import utcnow

mail_cli = AppGroup("mail", help="邮件发件箱的维护。")

DEFAULT_MINUTES = 10
SWEEP_LIMIT = 500  # one run's batch: a long outage's backlog drains over a few runs, never in one burst


def requeue_stuck(older_than: timedelta, *, sending_older_than: timedelta | None = None,
                  limit: int = SWEEP_LIMIT) -> list[int]:
    """Queue every `pending` message written more than `older_than` ago, and every `sending` one claimed
    more than `sending_older_than` (default MAIL_SENDING_STALE_MINUTES) ago, for delivery again (after
    this transaction commits); returns their ids, oldest first. Audited per message as a 重新发送 by the
    system."""
    if sending_older_than is None:
        sending_older_than = timedelta(minutes=int(current_app.config.get("MAIL_SENDING_STALE_MINUTES") or 10))
    cutoff = utcnow() - older_than
    minutes = int(older_than.total_seconds() // 60)
    sending_minutes = int(sending_older_than.total_seconds() // 60)
    with write_transaction() as session:
        rows = list(session.scalars(
            select(OutboxMessage).where(OutboxMessage.status == "pending", OutboxMessage.created_at <= cutoff)
            .order_by(OutboxMessage.created_at, OutboxMessage.id).limit(limit)))
        for row in rows:
            queue_after_commit(row.id)
            audit.record("mail.resend", "mail", row.id, before={"status": row.status, "attempts": row.attempts},
                         after={"status": row.status, "to": row.to_addr}, round_id=row.round_id,
                         reason=f"待发送超过 {minutes} 分钟仍未投递（flask mail sweep 重新提交）")
        stale_cutoff = utcnow() - sending_older_than
        stale = list(session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == "sending",
                   or_(OutboxMessage.claimed_at.is_(None), OutboxMessage.claimed_at <= stale_cutoff))
            .order_by(OutboxMessage.claimed_at, OutboxMessage.id).limit(max(0, limit - len(rows)))))
        requeued = []
        for row in stale:
            # Conditional like the claim: on PostgreSQL the delivery may finish between the select and
            # here, and its 已发送 must not be turned back into 待发送.
            result = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id, OutboxMessage.status == "sending",
                       OutboxMessage.attempts == row.attempts)
                .values(status="pending")
                .execution_options(synchronize_session=False))
            if result.rowcount != 1:
                continue
            requeued.append(row.id)
            queue_after_commit(row.id)
            audit.record("mail.resend", "mail", row.id, before={"status": "sending", "attempts": row.attempts},
                         after={"status": "pending", "to": row.to_addr}, round_id=row.round_id,
                         reason=f"发送中超过 {sending_minutes} 分钟仍未完成（发送进程可能已中断，flask mail sweep 重新提交）")
    return [row.id for row in rows] + requeued


@mail_cli.command("sweep")
@click.option("--older-than-minutes", type=click.IntRange(0, 7 * 24 * 60), default=DEFAULT_MINUTES,
              show_default=True, help="只处理写入超过这么多分钟仍为“待发送”的邮件")
@click.option("--sending-older-than-minutes", type=click.IntRange(0, 7 * 24 * 60), default=None,
              help="“发送中”超过这么多分钟仍未完成的邮件也重新提交（默认为配置 MAIL_SENDING_STALE_MINUTES，10 分钟）")
def sweep_command(older_than_minutes: int, sending_older_than_minutes: int | None):
    """重新提交滞留在“待发送”的邮件（提交后交给发送任务失败的，例如 Redis 不可用时），以及发送进程中断后卡在“发送中”的邮件。"""
    ids = requeue_stuck(timedelta(minutes=older_than_minutes),
                        sending_older_than=None if sending_older_than_minutes is None
                        else timedelta(minutes=sending_older_than_minutes))
    if not ids:
        click.echo("没有滞留的待发送邮件。")
        return
    click.echo(f"已重新提交 {len(ids)} 封滞留的待发送邮件：{', '.join(str(i) for i in ids)}。")
