"""Configuration: defaults here, then instance/config.py, then KEPU_* environment variables."""

import os

DEV_SECRET_KEY = "dev-only-secret-change-me"  # nosec B105 — production refuses to start with it


class Defaults:
    SECRET_KEY = DEV_SECRET_KEY
    # Resolved against the instance folder in create_app when left as None.
    SQLALCHEMY_DATABASE_URI = None
    # Test each pooled connection before use: after a PostgreSQL restart the idle ones are dead
    # (scripts/fault_test.py --scenario idle-pool: 1 of 20 page loads failed without it, 0 with it).
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    PRODUCTION = False
    # A scoring page may stay open all day: CSRF tokens live as long as the session.
    WTF_CSRF_TIME_LIMIT = None
    WTF_CSRF_SSL_STRICT = False
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    RATELIMIT_STORAGE_URI = "memory://"
    LOGIN_RATE_LIMIT = "5 per minute"
    RATELIMIT_HEADERS_ENABLED = False
    MAX_CONTENT_LENGTH = 210 * 1024 * 1024
    UPLOAD_MAX_PHOTO_BYTES = 8 * 1024 * 1024
    UPLOAD_MAX_PHOTO_PIXELS = 40_000_000
    UPLOAD_MAX_VIDEO_BYTES = 200 * 1024 * 1024
    # Resumable video uploads (app/tus): an unfinished one idle this long is removed; a PATCH waits this
    # long for another request still writing the same upload before it answers 409.
    TUS_EXPIRY_HOURS = 24
    TUS_LOCK_WAIT_SECONDS = 1
    SQLITE_BUSY_TIMEOUT_MS = 30_000
    RANKING_PAGE_SIZE = 100
    RANKING_POLL_SECONDS = 5
    # > 0: a poll may answer with the kept ranking if its last fold began at most this many seconds ago
    # (app/ranking/upkeep.py ensure): one fold per interval however fast reviewers save. National scale:
    # set it to RANKING_POLL_SECONDS. 0: every version is folded by the first poll that sees it.
    RANKING_MAX_AGE_SECONDS = 0
    # Reverse proxies in front of the app that add X-Forwarded-* (1 behind one nginx); 0 = none trusted.
    PROXY_COUNT = 0
    # Background jobs (app/jobs). Unset: SqliteHuey, a file in JOBS_FOLDER (default: the instance folder),
    # for one machine. KEPU_JOBS_URL=redis://host:6379/1: RedisHuey, one queue for consumers on many machines.
    JOBS_URL = None
    JOBS_FOLDER = None
    # True: a task runs inside the call that queues it (unit and web tests). None: True when TESTING.
    JOBS_IMMEDIATE = None
    # A running job rewrites its record every JOBS_HEARTBEAT_SECONDS; one silent for JOBS_STALE_SECONDS
    # belongs to a consumer that died and is reported 失败 (the page notices within a minute).
    JOBS_HEARTBEAT_SECONDS = 5
    JOBS_STALE_SECONDS = 30
    # Finished jobs (and their files) beyond the newest JOBS_KEEP, or older than JOBS_MAX_AGE_HOURS, are pruned.
    JOBS_KEEP = 60
    JOBS_MAX_AGE_HOURS = 72
    # E-mail (app/mail). No MAIL_SERVER: every message stays in the outbox (/admin/mail) for the admin.
    MAIL_SERVER = None
    MAIL_PORT = 25
    MAIL_USE_TLS = False  # STARTTLS after connecting (port 587)
    MAIL_USE_SSL = False  # TLS from the first byte (port 465)
    MAIL_USERNAME = None
    MAIL_PASSWORD = None
    MAIL_SENDER = "kepu-review@localhost"
    # Extra recipients of the admins' notices (comma separated), besides every active admin's e-mail.
    MAIL_ADMIN_TO = ""
    MAIL_TIMEOUT = 20
    MAIL_RETRY_DELAY = 60
    # A message claimed for delivery (发送中) this long ago lost its consumer mid-send; `flask mail sweep`
    # puts it back to 待发送. Far above MAIL_TIMEOUT (per SMTP step), so a send still under way is left alone.
    MAIL_SENDING_STALE_MINUTES = 10
    # How long an invitation link (/accounts/invite/<token>) works.
    INVITE_DAYS = 7


def from_environment() -> dict:
    """KEPU_FOO=bar becomes FOO='bar'; a few well-known names get friendlier aliases."""
    aliases = {"DATABASE_URL": "SQLALCHEMY_DATABASE_URI", "RATELIMIT_STORAGE": "RATELIMIT_STORAGE_URI"}
    out: dict = {}
    for key, value in os.environ.items():
        if not key.startswith("KEPU_"):
            continue
        name = key[len("KEPU_"):]
        name = aliases.get(name, name)
        if value.lower() in ("true", "false"):
            out[name] = value.lower() == "true"
        elif value.isdigit():
            out[name] = int(value)
        else:
            out[name] = value
    return out


def production_overrides() -> dict:
    return {
        "SESSION_COOKIE_SECURE": True,
        "REMEMBER_COOKIE_SECURE": True,
        "WTF_CSRF_SSL_STRICT": True,
        "PREFERRED_URL_SCHEME": "https",
    }
