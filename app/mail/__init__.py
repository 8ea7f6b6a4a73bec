"""E-mail, through one module: every message the system writes becomes an `OutboxMessage` row in the
caller's write transaction and is delivered (SMTP, a background job) only after that transaction
commits — a rolled-back operation sends nothing. Without KEPU_MAIL_SERVER the row stays in the outbox
for the admin to read (/admin/mail).

    from app import mail

    with write_transaction():
        ...
        mail.send(user.email, "【科普日评选】推荐材料已受理", body, round_id=rnd.id)
        mail.notify_admins("【科普日评选】新的推荐材料", body, round_id=rnd.id)
"""

from app.mail.outbox import is_valid_address, notify_admins, send

__all__ = ["is_valid_address", "notify_admins", "send"]
