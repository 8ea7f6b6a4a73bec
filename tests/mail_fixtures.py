"""A real SMTP server for the mail tests: aiosmtpd on 127.0.0.1 at a free port, keeping every message
it receives (parsed), and an app whose KEPU_MAIL_* settings point at it."""

from __future__ import annotations

import email
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    envelope_from: str
    envelope_to: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def to(self) -> str:
        return str(self.message["To"])

    @property
    def body(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()


@dataclass
class Collector:
    """The aiosmtpd handler: every DATA becomes a parsed message in `messages`."""

    messages: list[Received] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.original_content or envelope.content, policy=default_policy)
        with self._cond:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
            self._cond.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The first `count` messages, waiting at most `timeout` seconds for them to arrive."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} message(s), the SMTP server got {len(self.messages)}")
                self._cond.wait(left)
            return list(self.messages[:count])


@dataclass
class SmtpServer:
    host: str
    port: int
    collector: Collector

    @property
    def messages(self) -> list[Received]:
        return self.collector.messages

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        return self.collector.wait_for(count, timeout)

    def config(self) -> dict:
        return {"MAIL_SERVER": self.host, "MAIL_PORT": self.port, "MAIL_SENDER": "kepu@test.example"}


@pytest.fixture
def smtp_server():
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer(controller.hostname, controller.port, collector)
    finally:
        controller.stop()


@pytest.fixture
def mail_app(app_factory, smtp_server):
    """An app (SQLite file, schema created) that mails through the test SMTP server."""
    return app_factory(smtp_server.config())


def smtp_down_config() -> dict:
    """Settings pointing at a port nobody listens on: every delivery fails with "connection refused"."""
    return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": free_port(), "MAIL_TIMEOUT": 5}
