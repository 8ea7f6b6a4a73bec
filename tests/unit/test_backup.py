"""flask backup / flask restore on real SQLite files: a backup taken under write load is a consistent
snapshot holding every row committed before it started; restores verify, refuse and keep what they replace."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update

from app.audit import operations as audit
from app.core.database import write_transaction
from app.core.errors import UserError
from app.extensions import db
from app.models import AuditEvent, RankingCounter, User
from app.ops import backup as backup_service
from tests.factories import make_round

WRITERS = 3
PREFILL_ROWS = 12_000
PAD = "科普" * 400  # ~2.4 KB of UTF-8 per prefilled row: a database of some 30 MB


def _prefill(app) -> None:
    with app.app_context():
        make_round()
        rows = [{"action": "prefill", "object_type": "load", "object_id": i, "reason": PAD} for i in range(PREFILL_ROWS)]
        db.session.execute(insert(AuditEvent), rows)
        db.session.commit()


class Writer(threading.Thread):
    """Commits one audit row and one counter bump per transaction through the app's write path,
    and logs (seq, commit time) only after the commit returned — the acknowledged writes."""

    def __init__(self, app, name: str, stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self.app, self.stop, self.log, self.errors = app, stop, [], []

    def run(self):
        seq = 0
        with self.app.app_context():
            while not self.stop.is_set():
                seq += 1
                try:
                    with write_transaction():
                        audit.record("load.write", "load", seq, reason=self.name, after={"seq": seq})
                        db.session.execute(update(RankingCounter).where(RankingCounter.category == "unit")
                                           .values(version=RankingCounter.version + 1))
                except Exception as e:  # noqa: BLE001 — any failure under load is a finding
                    self.errors.append(repr(e))
                    return
                self.log.append((seq, time.monotonic()))
            db.session.remove()


def test_backup_under_write_load_is_a_consistent_snapshot_that_restores(app, tmp_path):
    _prefill(app)
    stop = threading.Event()
    writers = [Writer(app, f"writer-{i}", stop) for i in range(WRITERS)]
    for w in writers:
        w.start()
    # Every writer under way and a good number of rows committed first (asserted below), however
    # long that takes on this machine.
    deadline = time.monotonic() + 120
    while (sum(len(w.log) for w in writers) <= 40 or not all(w.log for w in writers)) \
            and not any(w.errors for w in writers) and time.monotonic() < deadline:
        time.sleep(0.05)
    out = tmp_path / "backups" / "under-load.sqlite3"
    with app.app_context():
        t0 = time.monotonic()
        result = backup_service.create_backup(out)
        t1 = time.monotonic()
    time.sleep(0.2)
    stop.set()
    for w in writers:
        w.join(30)
    assert not [e for w in writers for e in w.errors], "a writer failed while the backup ran"
    print(f"backup of {result.size_bytes / 2**20:.1f} MiB took {t1 - t0:.3f} s; writes acknowledged: "
          f"{sum(len(w.log) for w in writers)} in all, during the backup "
          f"{sum(1 for w in writers for _, at in w.log if t0 <= at <= t1)}")

    during = sum(1 for w in writers for _, at in w.log if t0 <= at <= t1)
    before = {(w.name, seq) for w in writers for seq, at in w.log if at < t0}
    assert len(before) > 20, "the writers did not get going before the backup"
    assert during > 0, "no write committed while the backup ran: the test proved nothing"
    assert result.integrity == "ok" and result.audited and result.path == out.resolve()
    assert not list(out.parent.glob(".*.tmp")), "the temporary file was left behind"

    restored = tmp_path / "fresh" / "kepu.sqlite3"
    restore = backup_service.restore_sqlite(out, restored)
    assert restore.previous_saved_as is None
    conn = sqlite3.connect(restored)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("SELECT count(*) FROM audit_events WHERE action = 'prefill'").fetchone()[0] == PREFILL_ROWS
        present = set(conn.execute("SELECT reason, object_id FROM audit_events WHERE action = 'load.write'"))
        counter = conn.execute("SELECT version FROM ranking_counters WHERE category = 'unit'").fetchone()[0]
        self_audit = conn.execute("SELECT count(*) FROM audit_events WHERE action = 'ops.backup'").fetchone()[0]
    finally:
        conn.close()

    missing = before - present
    assert not missing, f"{len(missing)} rows committed before the backup started are missing"
    # A snapshot: each writer's rows form a prefix of its own sequence (no holes), and the counter row
    # in the other table agrees with the number of rows — both halves of every transaction, or neither.
    for w in writers:
        seqs = sorted(s for name, s in present if name == w.name)
        assert seqs == list(range(1, len(seqs) + 1)), f"{w.name} has holes in the snapshot"
    assert counter == 1 + len(present)
    acknowledged_by_t1 = {(w.name, seq) for w in writers for seq, at in w.log if at <= t1}
    assert present <= acknowledged_by_t1 | {(w.name, len(w.log) + 1) for w in writers}
    assert self_audit == 0  # the backup is recorded in the live database, after the snapshot

    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "ops.backup"))
        assert event.after["file"] == str(out.resolve()) and event.after["integrity"] == "ok"
        assert event.after["sha256"] == result.sha256 == backup_service.sha256_of(out)


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def _db_file(app) -> Path:
    with app.app_context():
        return backup_service.sqlite_path()


def _usernames(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT username FROM users")}
    finally:
        conn.close()


def test_cli_backup_then_restore_replaces_keeps_and_audits(app, runner, tmp_path):
    assert runner.invoke(args=["users", "create", "before1", "--role", "admin", "--password", "secret-pass-1"]).exit_code == 0
    out = tmp_path / "b.sqlite3"
    done = runner.invoke(args=["backup", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "备份完成" in done.output and "完整性检查：ok" in done.output

    again = runner.invoke(args=["backup", "--out", str(out)])
    assert again.exit_code != 0 and "已存在" in again.output and "--force" in again.output
    assert runner.invoke(args=["backup", "--out", str(out), "--force"]).exit_code == 0

    assert runner.invoke(args=["users", "create", "after1", "--role", "admin", "--password", "secret-pass-1"]).exit_code == 0
    live = _db_file(app)
    assert _usernames(live) == {"before1", "after1"}

    unconfirmed = runner.invoke(args=["restore", str(out)])
    assert unconfirmed.exit_code == 2 and "--yes" in unconfirmed.output
    assert _usernames(live) == {"before1", "after1"}

    restored = runner.invoke(args=["restore", str(out), "--yes"])
    assert restored.exit_code == 0, restored.output
    assert "恢复完成" in restored.output and "原数据库已保留为" in restored.output
    assert _usernames(live) == {"before1"}
    baks = list(live.parent.glob(f"{live.name}.*.bak"))
    assert len(baks) == 1 and _usernames(baks[0]) == {"before1", "after1"}
    with app.app_context():
        db.engine.dispose()
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "ops.restore"))
        assert event is not None and event.after["source"] == str(out.resolve())
        assert event.after["previous_saved_as"] == str(baks[0])
        # the app keeps working on the restored file, in WAL mode again
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) >= 2
        assert db.session.execute(db.text("PRAGMA journal_mode")).scalar() == "wal"


def test_restore_refuses_while_another_connection_holds_the_database(app, runner, tmp_path):
    out = tmp_path / "b.sqlite3"
    assert runner.invoke(args=["backup", "--out", str(out)]).exit_code == 0
    assert runner.invoke(args=["users", "create", "later", "--role", "admin", "--password", "secret-pass-1"]).exit_code == 0
    live = _db_file(app)
    server = sqlite3.connect(live)  # what a running gunicorn worker's pool looks like
    server.execute("SELECT count(*) FROM users").fetchone()
    try:
        refused = runner.invoke(args=["restore", str(out), "--yes"])
    finally:
        server.close()
    assert refused.exit_code != 0 and "正被其他进程使用" in refused.output
    assert _usernames(live) == {"later"}
    assert not list(live.parent.glob("*.bak")) and not list(live.parent.glob(".*.tmp"))


def test_restore_rejects_files_that_are_not_sound_kepu_databases(app, tmp_path):
    target = tmp_path / "target.sqlite3"
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("hello")
    other = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    good = tmp_path / "good.sqlite3"
    with app.app_context():
        # Plain insert: the name then sits only in the table and its unique index (no audit JSON copy).
        db.session.add(User(username="markeruser01", display_name="M", password_hash="x", role="admin"))
        db.session.commit()
        backup_service.create_backup(good)
    # Structurally sound pages, but the unique index on users.username no longer matches the table:
    # only PRAGMA integrity_check notices.
    index_mismatch = tmp_path / "index-mismatch.sqlite3"
    raw = bytearray(good.read_bytes())
    at = raw.rfind(b"markeruser01")
    raw[at:at + 12] = b"markeruser02"
    index_mismatch.write_bytes(bytes(raw))
    truncated = tmp_path / "truncated.sqlite3"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    corrupt = tmp_path / "corrupt.sqlite3"
    data = bytearray(good.read_bytes())
    for page in range(2, len(data) // 4096):  # scribble over every b-tree page header but the first
        data[page * 4096: page * 4096 + 8] = b"\xff" * 8
    corrupt.write_bytes(bytes(data))

    for bad, message in [(tmp_path / "missing.sqlite3", "找不到备份文件"), (not_sqlite, "不是 SQLite"),
                         (other, "不是本系统的数据库"), (index_mismatch, "完整性检查未通过"),
                         (truncated, "malformed"), (corrupt, "malformed")]:
        with pytest.raises(UserError) as caught:
            backup_service.restore_sqlite(bad, target)
        assert message in caught.value.message
        assert not target.exists(), f"{bad.name} left a database behind"
    assert not list(tmp_path.glob(".*.tmp"))
    backup_service.restore_sqlite(good, target)
    assert target.exists()


def test_restore_keeps_uncheckpointed_wal_data_with_the_old_file_and_leaves_no_stale_wal(app, tmp_path):
    good = tmp_path / "good.sqlite3"
    with app.app_context():
        backup_service.create_backup(good)
    # A crash image: the newest rows only in the -wal file, which a careless restore would orphan.
    crashed = tmp_path / "crashed.sqlite3"
    conn = sqlite3.connect(crashed, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE users (username TEXT)")
    conn.execute("INSERT INTO users VALUES ('only-in-wal')")
    target = tmp_path / "target.sqlite3"
    shutil.copy(crashed, target)
    shutil.copy(f"{crashed}-wal", f"{target}-wal")
    conn.close()
    assert Path(f"{target}-wal").stat().st_size > 0

    result = backup_service.restore_sqlite(good, target)
    assert result.previous_saved_as is not None
    assert _usernames(result.previous_saved_as) == {"only-in-wal"}
    assert not Path(f"{target}-wal").exists() and not Path(f"{target}-shm").exists()
    check = sqlite3.connect(target)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert check.execute("SELECT count(*) FROM rounds").fetchone()[0] == 0
    check.close()


def test_restore_over_a_damaged_live_file_sets_it_aside(app, tmp_path):
    good = tmp_path / "good.sqlite3"
    with app.app_context():
        backup_service.create_backup(good)
    target = tmp_path / "live.sqlite3"
    target.write_bytes(b"\x00garbage" * 1000)
    result = backup_service.restore_sqlite(good, target)
    assert result.previous_saved_as.read_bytes() == b"\x00garbage" * 1000
    check = sqlite3.connect(target)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()


def test_backup_refuses_its_own_database_file_and_directories(app, runner, tmp_path):
    live = _db_file(app)
    same = runner.invoke(args=["backup", "--out", str(live), "--force"])
    assert same.exit_code != 0 and "不能与数据库文件相同" in same.output
    folder = runner.invoke(args=["backup", "--out", str(tmp_path)])
    assert folder.exit_code != 0


def test_backup_default_path_is_under_the_backup_folder(app_factory, tmp_path):
    app = app_factory({"BACKUP_FOLDER": str(tmp_path / "nightly")})
    done = app.test_cli_runner().invoke(args=["backup"])
    assert done.exit_code == 0, done.output
    files = list((tmp_path / "nightly").glob("kepu-*.sqlite3"))
    assert len(files) == 1
    shutil.copy(files[0], tmp_path / "copy.sqlite3")
    conn = sqlite3.connect(tmp_path / "copy.sqlite3")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
