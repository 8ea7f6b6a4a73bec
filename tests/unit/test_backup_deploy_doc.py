"""docs/deploy.md, executed: every block marked `<!-- run: NAME -->` runs verbatim in bash (only the
production paths, the drill database's name and the Redis database number are swapped for test values;
`sudo -u postgres` is dropped because the test reaches PostgreSQL as its superuser over TCP), the env file
is checked key by key against the configuration the app reads, and the systemd unit's gunicorn command
line serves the app in production mode."""

from __future__ import annotations

import re
import secrets
import shlex
import socket
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
import requests
from sqlalchemy.engine import make_url

from app.config import Defaults
from tests.conftest import PG_URL

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deploy.md"
DB = ROLE = "kepu_test_ops_deploy"
DRILL_DB = "kepu_test_ops_drill"
REDIS_DB = 12  # 13: scripts/load_test.py, 14: test_throttle_redis, 15: bench_throttle
BLOCK = re.compile(r"<!-- (run|env|unit|nginx): ([\w.-]+) -->\n```[\w]*\n(.*?)```", re.S)


def doc_blocks() -> dict[tuple[str, str], str]:
    return {(kind, name): body for kind, name, body in BLOCK.findall(DOC.read_text(encoding="utf-8"))}


def _superuser_dsn(database: str = "postgres") -> str:
    return make_url(PG_URL).set(drivername="postgresql", database=database).render_as_string(hide_password=False)


def _drop_everything() -> None:
    with psycopg.connect(_superuser_dsn(), autocommit=True) as conn:
        for name in (DB, DRILL_DB):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{ROLE}"')


class Deployment:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.password = "pw-" + secrets.token_hex(12)
        url = make_url(PG_URL)
        self.pg_host, self.pg_port = url.host or "127.0.0.1", url.port or 5432
        self.subst = [
            ("sudo -u postgres ", ""),
            ("/srv/kepu-shared", str(tmp / "shared")),
            ("/srv/kepu", str(ROOT)),
            ("/etc/kepu/kepu.env", str(tmp / "kepu.env")),
            ("/var/backups/kepu", str(tmp / "backups")),
            ("kepu_drill", DRILL_DB),
            ("redis://127.0.0.1:6379/0", f"redis://127.0.0.1:6379/{REDIS_DB}"),
            ("127.0.0.1:5432", f"{self.pg_host}:{self.pg_port}"),
        ]
        (tmp / "backups").mkdir()
        (tmp / "shared").mkdir()
        self.base_env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("KEPU_", "FLASK_"))}
        self.base_env.update({
            "KEPU_DB": DB, "KEPU_DB_USER": ROLE, "KEPU_DB_PASSWORD": self.password,
            "PGHOST": self.pg_host, "PGPORT": str(self.pg_port), "PGUSER": url.username or "postgres",
            "PGPASSWORD": self.password,
            # The app's own instance folder stays out of it (a developer's instance/config.py).
            "KEPU_INSTANCE_PATH": str(tmp / "instance"),
        })

    def localize(self, text: str) -> str:
        for old, new in self.subst:
            text = text.replace(old, new)
        return text

    def run(self, body: str, *, env: dict | None = None, stdin: str | None = None) -> str:
        script = self.localize(body)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=self.tmp, env=env or self.base_env,
                              input=stdin, capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0, f"block failed:\n{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        return done.stdout + done.stderr


def _parse_env_file(body: str) -> dict[str, str]:
    out = {}
    for line in body.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key] = value.strip().strip('"')
    return out


def _config_name(env_key: str) -> str:
    name = env_key.removeprefix("KEPU_")
    return {"DATABASE_URL": "SQLALCHEMY_DATABASE_URI", "RATELIMIT_STORAGE": "RATELIMIT_STORAGE_URI"}.get(name, name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_and_check(dep: Deployment, unit: str, env: dict) -> None:
    exec_start = re.search(r"^ExecStart=(.+)$", unit, re.M).group(1)
    assert re.search(r"^WorkingDirectory=/srv/kepu$", unit, re.M) and "EnvironmentFile=/etc/kepu/kepu.env" in unit
    argv = shlex.split(dep.localize(exec_start))
    assert argv[argv.index("--worker-class") + 1] == "gthread"
    port = _free_port()
    argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    log = open(dep.tmp / "gunicorn.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a bound for a hung start, not a speed requirement
        while True:
            assert proc.poll() is None, (dep.tmp / "gunicorn.log").read_text()
            try:
                page = requests.get(f"{base}/login", timeout=10)
                break
            except (requests.ConnectionError, requests.Timeout):
                assert time.monotonic() < deadline, "gunicorn did not come up"
                time.sleep(0.3)
        assert page.status_code == 200 and "登录" in page.text
        assert "max-age=" in page.headers["Strict-Transport-Security"]
        cookie = page.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        session = cookie.split(";", 1)[0]
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        form = {"username": "admin", "password": "wrong-password", "csrf_token": token}

        def post(headers):
            return requests.post(f"{base}/login", data=form, timeout=30, allow_redirects=False,
                                 headers={"Cookie": session, **headers}).status_code

        # KEPU_PROXY_COUNT=1 + X-Forwarded-Proto: https → the app knows it is on https and, in production,
        # demands a same-origin Referer on top of the CSRF token.
        assert post({"X-Forwarded-Proto": "https"}) == 400
        assert post({"X-Forwarded-Proto": "https", "Referer": f"https://127.0.0.1:{port}/login",
                     "Host": f"127.0.0.1:{port}"}) == 401
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def test_the_deploy_guide_runs_as_written(tmp_path):
    blocks = doc_blocks()
    names = {name for _, name in blocks}
    assert {"pg-create", "secret", "kepu.env", "migrate", "redis-check", "kepu.service", "backup-sqlite",
            "backup-pg", "drill-pg", "drill-sqlite"} <= names
    dep = Deployment(tmp_path)
    _drop_everything()
    try:
        # 3. PostgreSQL role and database
        dep.run(blocks[("run", "pg-create")])

        # 4. secret, env file, migrate, first admin
        secret = dep.run(blocks[("run", "secret")]).strip()
        assert re.fullmatch(r"[0-9a-f]{64}", secret)
        documented = _parse_env_file(blocks[("env", "kepu.env")])
        unknown = [k for k in documented if not (hasattr(Defaults, _config_name(k))
                                                 or _config_name(k) in ("UPLOAD_FOLDER", "BACKUP_FOLDER"))]
        assert not unknown, f"deploy.md sets variables the app does not read: {unknown}"
        assert documented["KEPU_PRODUCTION"] == "true" and documented["KEPU_PROXY_COUNT"] == "1"
        values = {k: dep.localize(v) for k, v in documented.items()}
        values.update({
            "KEPU_SECRET_KEY": secret,
            "KEPU_DATABASE_URL": f"postgresql+psycopg://{ROLE}:{dep.password}@{dep.pg_host}:{dep.pg_port}/{DB}",
            "KEPU_RATELIMIT_STORAGE": f"redis://127.0.0.1:6379/{REDIS_DB}",
        })
        (tmp_path / "kepu.env").write_text("".join(f'{k}="{v}"\n' for k, v in values.items()))
        out = dep.run(blocks[("run", "migrate")], stdin="admin-password-1\nadmin-password-1\n")
        assert "已创建用户 admin" in out

        # 5. Redis (a clean counter database: a previous run's attempts must not count against this one)
        assert "PONG" in dep.run(blocks[("run", "redis-check")])
        import redis

        redis.Redis.from_url(f"redis://127.0.0.1:6379/{REDIS_DB}").flushdb()

        # 6. gunicorn exactly as the systemd unit starts it, in production mode behind a (simulated) proxy
        _serve_and_check(dep, blocks[("unit", "kepu.service")], {**dep.base_env, **values})

        # 9. PostgreSQL backups, then the restore drill into a scratch database
        out = dep.run(blocks[("run", "backup-pg")])
        assert "备份完成" in out
        dumps = sorted((tmp_path / "backups").glob("kepu-*.dump"))
        assert len(dumps) == 2 and all(d.read_bytes()[:5] == b"PGDMP" for d in dumps)
        drill = dep.run(blocks[("run", "drill-pg")])
        assert re.search(r"users\s*\n-+\s*\n\s*1\s*\n", drill), drill  # the admin made above
        assert "audit_events" in drill and "(1 row)" in drill
        with psycopg.connect(_superuser_dsn(), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (DRILL_DB,)).fetchone()[0] == 0

        # 9. SQLite: a single-server deployment's backup, then its drill into a scratch instance folder
        sqlite_env = {**dep.base_env, "KEPU_INSTANCE_PATH": str(tmp_path / "sqlite-instance")}
        (tmp_path / "sqlite-instance").mkdir()
        dep.run(f"cd {ROOT} && .venv/bin/flask --app wsgi db upgrade && .venv/bin/flask --app wsgi users create "
                "drill_user --role reviewer --password drill-password-1", env=sqlite_env)
        assert "备份完成" in dep.run(blocks[("run", "backup-sqlite")], env=sqlite_env)
        assert len(list((tmp_path / "backups").glob("kepu-*.sqlite3"))) == 1
        drill = dep.run(blocks[("run", "drill-sqlite")], env=sqlite_env)
        assert "恢复完成" in drill and "drill_user" in drill
    finally:
        _drop_everything()
