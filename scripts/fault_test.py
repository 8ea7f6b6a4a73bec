#!/usr/bin/env python3
"""Fault injection under load (the workload of scripts/load_test.py).

kill9:      kill -9 the whole gunicorn process group (master and workers) in the middle of the load,
            start it again on the same database and port, keep the load going, then check that no
            acknowledged save is missing (SQLite WAL and PostgreSQL).
pg-restart: restart the PostgreSQL server (`pg_ctlcluster --skip-systemctl-redirect 15 main restart`)
            in the middle of the load WITHOUT touching the app: requests must fail cleanly (a 5xx with
            the Chinese error page, or a connection error; nothing hangs beyond the client timeouts)
            and saves must succeed again afterwards. PostgreSQL is started again whatever happens.
            It disturbs everything else using that server: keep it out of pytest. Afterwards, with the
            app idle, the server closes every connection of the app's database (pg_terminate_backend)
            and 20 page loads must succeed: what an idle pool meets after a restart or failover.
idle-pool:  that last probe alone, after a short load, without restarting anything (safe for pytest).

Usage: .venv/bin/python scripts/fault_test.py [--scenario kill9|pg-restart|idle-pool|all] [--engine sqlite|pg|both]
  [--pg postgresql+psycopg://postgres@127.0.0.1:5432] [--duration 30] [--reviewers 50] [--chairs 5]
  [--workers 2] [--threads 8] [--kill-at 0.4] [--acks-before 1] [--acks-after 1] [--max-duration S]
  [--down 1.0] [--pre-ping default|on|off] [--db-prefix kepu_load_] [--db-suffix ''] [--keep]
kill9 waits for states, not for the clock alone: it strikes once --kill-at of --duration has passed
AND --acks-before saves were acknowledged, and the load goes on past --duration until
--acks-after saves were acknowledged after the restart; a slow machine makes the run longer,
only --max-duration makes it give up.
Prints one JSON object as its last line; exit status 1 when a check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess  # nosec B404 — pg_ctlcluster with an argument list
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load_test as lt  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
# Requests that started this long after PostgreSQL answered again must all succeed.
RECOVERY_GRACE_S = 5.0


def load_args(args, engine: str, pg_db: str) -> argparse.Namespace:
    """The load_test options for one scenario run."""
    argv = ["--duration", str(args.duration), "--reviewers", str(args.reviewers), "--chairs", str(args.chairs),
            "--workers", str(args.workers), "--threads", str(args.threads), "--seed", str(args.seed),
            "--bad-logins", "0"]
    if engine == "pg":
        argv += ["--pg", args.pg, "--pg-db", pg_db]
    return lt.parser("").parse_args(argv)


def _pre_ping(work: Path, choice: str) -> None:
    """on/off: pin pool_pre_ping in the run's private instance/config.py (the file an operator would
    edit); default: leave app/config.py's Defaults in force."""
    if choice != "default":
        (work / "instance" / "config.py").write_text(
            f'SQLALCHEMY_ENGINE_OPTIONS = {{"pool_pre_ping": {choice == "on"}}}\n')


def _wal_bytes(db_url: str) -> int | None:
    if not db_url.startswith("sqlite"):
        return None
    wal = Path(db_url[len("sqlite:///"):] + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def _acks_between(log: list[dict], start: float, end: float) -> int:
    return sum(1 for e in log if e["outcome"] == "ack" and start <= e["t"] < end)


def kill9(args, engine: str) -> dict:
    ns = load_args(args, engine, f"{args.db_prefix}fault_kill9{args.db_suffix}")
    with lt.work_dir(args.keep, "kepu-fault-kill9-") as work:
        db_url, env, workload = lt.setup(ns, work)
        _pre_ping(work, args.pre_ping)
        server = lt.Server(env, ns.workers, ns.threads, work)
        recorder = lt.Recorder(work / "saves.jsonl")
        marks: dict = {}

        def save_in_flight() -> None:
            # Strike while a save is on its way (up to 10 s of waiting for one), not between requests.
            deadline = time.monotonic() + 10
            while recorder.in_flight["save"] + recorder.in_flight["submit"] == 0 and time.monotonic() < deadline:
                time.sleep(0.0005)
            marks["killed"] = recorder.now()

        def kill_and_restart() -> dict:
            killed = server.kill9(when=save_in_flight)
            wal = _wal_bytes(db_url)
            time.sleep(args.down)
            first_answer = server.start()
            marks["restarted"] = recorder.now()
            return {"processes_killed": killed, "wal_bytes_after_kill": wal,
                    "seconds_to_first_answer": round(first_answer, 2)}

        def time_to_kill() -> bool:
            # Both: far enough into the load by the clock, and enough acknowledged saves to lose.
            return recorder.now() >= ns.duration * args.kill_at and recorder.acks_since() >= args.acks_before

        def enough_after_restart() -> bool:
            restarted = marks.get("restarted")
            return restarted is not None and recorder.acks_since(restarted) >= args.acks_after

        try:
            server.start()
            run = lt.run_load(server.base, workload, ns.duration, recorder, seed=ns.seed,
                              schedule=[(time_to_kill, "kill9", kill_and_restart)],
                              until=enough_after_restart, deadline=args.max_duration)
        finally:
            server.stop()
            recorder.close()
        log = lt.read_log(recorder.log_path)
        check = lt.verify(db_url, log, workload)
    figs = lt.figures(recorder.requests)
    fault = (run.schedule_results.get("kill9") or {}).get("result") or {}
    killed, restarted = marks.get("killed"), marks.get("restarted")
    out = {
        "engine": lt.engine_name(db_url), "workers": ns.workers, "reviewers": ns.reviewers, "chairs": ns.chairs,
        "duration": round(run.duration, 1), "pre_ping": args.pre_ping, "goal_reached": run.goal_reached,
        "killed_at_s": round(killed, 2) if killed is not None else None,
        "down_s": round(restarted - killed, 2) if killed is not None and restarted is not None else None,
        **fault,
        # Requests under way when the processes died: their clients saw the connection drop.
        "requests_cut_by_kill": sum(1 for r in recorder.requests if killed is not None and r[0] < killed
                                    and r[2] in ("conn_error", "timeout")),
        "acks_before_kill": _acks_between(log, 0, killed) if killed is not None else None,
        "acks_after_restart": _acks_between(log, restarted, 1e9) if restarted is not None else None,
        **lt.save_outcomes(log),
        "status_totals": figs["status_totals"], "errors_5xx": figs["errors_5xx"],
        **{k: v for k, v in check.items() if k != "missing_examples"},
        "missing_examples": check["missing_examples"],
    }
    out["ok"] = bool(run.goal_reached and killed is not None and restarted is not None and out["missing_saves"] == 0
                     and out["audit_missing"] == 0 and out["audit_mismatch"] == 0
                     and out["audit_chain_breaks"] == 0 and out["acks_after_restart"]
                     and out["processes_killed"] >= ns.workers + 1 and check["sqlite_integrity"] in (None, "ok"))
    return out


# --- PostgreSQL restart ---------------------------------------------------------------------------

def pg_cluster(value: str | None) -> tuple[str, str]:
    if value:
        version, _, name = value.partition("/")
        return version, name or "main"
    versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".") if p.isdigit()])
    return versions[-1], "main"


def pg_ctl(version: str, cluster: str, action: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, action],  # nosec B603 B607
                          capture_output=True, text=True, timeout=timeout, check=False)


def wait_for_pg(server_url: str, timeout: float = 60) -> bool:
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = make_url(server_url).set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(dsn, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            time.sleep(0.25)
    return False


def ensure_pg_running(version: str, cluster: str, server_url: str) -> bool:
    if pg_ctl(version, cluster, "status").returncode != 0:
        pg_ctl(version, cluster, "start")
    return wait_for_pg(server_url)


def idle_pool_probe(server, workload, server_url: str, db_name: str, requests_n: int = 20) -> dict:
    """After the load, with the app idle: the server closes every connection of the app's database
    (what an idle pool finds after a PostgreSQL restart or failover, without disturbing the other
    databases on the server), then one reviewer makes `requests_n` page loads one after another."""
    import psycopg
    import requests
    from sqlalchemy.engine import make_url

    dsn = make_url(server_url).set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False)
    session = requests.Session()
    recorder = lt.Recorder(server.log_dir / "idle-probe.jsonl")
    try:
        lt.login(session, server.base, workload.reviewers[0].username, recorder)
        nomination_id = min(workload.reviewers[0].items)
        with psycopg.connect(dsn, autocommit=True) as conn:
            # An idle app: every connection of its database back in the pool, none mid-request.
            deadline = time.monotonic() + 60
            while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state <> 'idle' "
                               "AND pid <> pg_backend_pid()", (db_name,)).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the app's connections to {db_name} stayed busy for 60 s")
                time.sleep(0.1)
            closed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE datname = %s AND pid <> pg_backend_pid()", (db_name,)).fetchone()[0]
        statuses = []
        for _ in range(requests_n):
            _, status = lt._timed(recorder, "open", session, "GET",
                                  f"{server.base}/review/nominations/{nomination_id}")
            statuses.append(status)
    finally:
        session.close()
        recorder.close()
    return {"connections_closed": closed, "requests": requests_n,
            "failed": sum(1 for st in statuses if st != "200"), "statuses": statuses}


def idle_pool(args) -> dict:
    """The idle-pool half of pg-restart on its own (no server restart, safe next to other users of
    the server): a short load fills the pools, then the app's connections are closed under it."""
    ns = load_args(args, "pg", f"{args.db_prefix}fault_idle{args.db_suffix}")
    with lt.work_dir(args.keep, "kepu-fault-idle-") as work:
        db_url, env, workload = lt.setup(ns, work)
        _pre_ping(work, args.pre_ping)
        server = lt.Server(env, ns.workers, ns.threads, work)
        recorder = lt.Recorder(work / "saves.jsonl")
        try:
            server.start()
            lt.run_load(server.base, workload, ns.duration, recorder, seed=ns.seed)
            probe = idle_pool_probe(server, workload, args.pg, ns.pg_db)
            alive = server.proc.poll() is None
        finally:
            server.stop()
            recorder.close()
    return {"engine": "postgresql", "workers": ns.workers, "pre_ping": args.pre_ping, **probe,
            "app_restarted": not alive, "ok": probe["failed"] == 0 and alive}


def pg_restart(args) -> dict:
    version, cluster = pg_cluster(args.pg_cluster)
    ns = load_args(args, "pg", f"{args.db_prefix}fault_pgrestart{args.db_suffix}")
    try:
        with lt.work_dir(args.keep, "kepu-fault-pgrestart-") as work:
            db_url, env, workload = lt.setup(ns, work)
            _pre_ping(work, args.pre_ping)
            server = lt.Server(env, ns.workers, ns.threads, work)
            recorder = lt.Recorder(work / "saves.jsonl")
            marks: dict = {}

            def restart() -> dict:
                marks["begin"] = recorder.now()
                done = pg_ctl(version, cluster, "restart")
                marks["end"] = recorder.now()
                return {"cluster": f"{version}/{cluster}", "returncode": done.returncode,
                        "stderr": done.stderr.strip()[-300:], "restart_seconds": round(marks["end"] - marks["begin"], 2)}

            try:
                server.start()
                pid = server.proc.pid
                run = lt.run_load(server.base, workload, ns.duration, recorder, seed=ns.seed,
                                  schedule=[(ns.duration * args.kill_at, "pg_restart", restart)])
                same_process = server.proc.pid == pid and server.proc.poll() is None and server.starts == 1
                idle = idle_pool_probe(server, workload, args.pg, ns.pg_db)
            finally:
                server.stop()
                recorder.close()
            log = lt.read_log(recorder.log_path)
            check = lt.verify(db_url, log, workload)
    finally:
        pg_running = ensure_pg_running(version, cluster, args.pg)
    return _pg_restart_summary(ns, args, run, recorder, log, check, marks, same_process, pg_running, idle)


def _pg_restart_summary(ns, args, run, recorder, log, check, marks, same_process, pg_running, idle) -> dict:
    begin, end = marks.get("begin"), marks.get("end")
    fault = (run.schedule_results.get("pg_restart") or {}).get("result") or {}
    reqs = recorder.requests
    failed = [r for r in reqs if not _ok_status(r[2])]
    window = [r for r in failed if begin is not None and r[0] + r[3] / 1000 >= begin]
    first_ok_save = None
    if end is not None:
        after = [e["t"] for e in log if e["outcome"] == "ack" and e["t"] >= end]
        first_ok_save = round(min(after) - end, 2) if after else None
    late = [r for r in reqs if end is not None and r[0] >= end + RECOVERY_GRACE_S]
    late_failed = [r for r in late if not _ok_status(r[2])]
    statuses: dict = {}
    for r in failed:
        statuses[r[2]] = statuses.get(r[2], 0) + 1
    fivexx = sum(1 for r in failed if r[2].isdigit() and int(r[2]) >= 500)
    out = {
        "engine": "postgresql", "workers": ns.workers, "reviewers": ns.reviewers, "chairs": ns.chairs,
        "duration": round(run.duration, 1), "pre_ping": args.pre_ping, **fault,
        "restart_began_at_s": round(begin, 2) if begin is not None else None,
        "failed_requests": len(failed), "failed_by_status": statuses,
        "failed_outside_restart_window": len(failed) - len(window),
        # Failures of requests that began once pg_ctlcluster had returned (PostgreSQL answering):
        # dead pooled connections being found out one request at a time.
        "failed_after_pg_back": sum(1 for r in failed if end is not None and r[0] >= end),
        "errors_5xx": fivexx, "clean_5xx": recorder.clean_5xx, "pages_5xx": dict(recorder.bodies_5xx),
        "timeouts": statuses.get("timeout", 0),
        "max_latency_ms": round(max((r[3] for r in reqs), default=0), 1),
        "first_ack_after_restart_s": first_ok_save,
        "requests_after_recovery": len(late), "failed_after_recovery": len(late_failed),
        "app_restarted": not same_process, "pg_running_at_end": pg_running,
        "idle_pool": idle,
        **lt.save_outcomes(log),
        **{k: v for k, v in check.items() if k != "missing_examples"},
        "missing_examples": check["missing_examples"],
    }
    ends = [r[0] + r[3] / 1000 - end for r in failed if end is not None]
    out["last_failure_after_pg_back_s"] = round(max(ends), 2) if ends else None
    # Cleanly: every failure is the Chinese 500 page or a refused/cut connection, none a hang.
    out["failed_cleanly"] = bool(out["timeouts"] == 0 and out["clean_5xx"] == out["errors_5xx"]
                                 and set(statuses) <= {"500", "502", "503", "conn_error"})
    out["recovered"] = bool(fault.get("returncode") == 0 and not out["app_restarted"] and pg_running
                            and first_ok_save is not None and out["failed_after_recovery"] == 0
                            and idle["failed"] == 0)
    out["ok"] = bool(out["failed_cleanly"] and out["recovered"] and out["missing_saves"] == 0
                     and out["audit_missing"] == 0 and out["audit_chain_breaks"] == 0)
    return out


def _ok_status(status: str) -> bool:
    return status.isdigit() and int(status) < 500 and status != "429"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", choices=("kill9", "pg-restart", "idle-pool", "all"), default="all",
                   help="all = kill9 and pg-restart (pg-restart includes the idle-pool probe)")
    p.add_argument("--engine", choices=("sqlite", "pg", "both"), default="both", help="for kill9")
    p.add_argument("--pg", default=DEFAULT_PG, metavar="URL", help="PostgreSQL server URL")
    p.add_argument("--pg-cluster", default=None, help="VERSION/NAME for pg_ctlcluster (default: newest/main)")
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--reviewers", type=int, default=50)
    p.add_argument("--chairs", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--kill-at", type=float, default=0.4,
                   help="fault at this fraction of the duration at the earliest")
    p.add_argument("--acks-before", type=int, default=1,
                   help="kill9: not before this many saves have been acknowledged")
    p.add_argument("--acks-after", type=int, default=1,
                   help="kill9: keep the load going until this many saves were acknowledged after the restart")
    p.add_argument("--max-duration", type=float, default=None, metavar="SECONDS",
                   help="give up (and fail) when the load has run this long (default: duration + "
                        f"{lt.DEFAULT_GRACE_S:g})")
    p.add_argument("--down", type=float, default=1.0, help="seconds between kill -9 and the restart")
    p.add_argument("--pre-ping", choices=("default", "on", "off"), default="default",
                   help="pin SQLALCHEMY_ENGINE_OPTIONS = {'pool_pre_ping': ...} in the run's instance config")
    p.add_argument("--db-prefix", default="kepu_load_",
                   help="the throw-away databases are PREFIXfault_kill9SUFFIX etc. (PREFIX starts with kepu_)")
    p.add_argument("--db-suffix", default="", help="appended to the fault_* database names")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()

    summary: dict = {}
    if args.scenario in ("kill9", "all"):
        engines = ["sqlite", "pg"] if args.engine == "both" else [args.engine]
        summary["kill9"] = {}
        for engine in engines:
            result = kill9(args, engine)
            summary["kill9"][result["engine"]] = result
            print(f"kill9 {result['engine']}: killed {result['processes_killed']} processes at "
                  f"{result['killed_at_s']} s, answering again after {result['down_s']} s; acks "
                  f"{result['acknowledged_saves']} ({result['acks_before_kill']} before the kill, "
                  f"{result['acks_after_restart']} after the restart), unknown outcome {result['unknown_outcome']}, "
                  f"committed but unacknowledged {result['later_unacknowledged_committed']}; "
                  f"missing {result['missing_saves']}; audit missing {result['audit_missing']}; "
                  f"integrity {result['sqlite_integrity']}; ok={result['ok']}", flush=True)
    if args.scenario in ("pg-restart", "all"):
        result = pg_restart(args)
        summary["pg_restart"] = result
        print(f"pg-restart: restart took {result.get('restart_seconds')} s at {result['restart_began_at_s']} s; "
              f"failed requests {result['failed_requests']} {result['failed_by_status']} "
              f"(5xx {result['errors_5xx']}, with the Chinese page {result['clean_5xx']}, timeouts {result['timeouts']}); "
              f"first acknowledged save {result['first_ack_after_restart_s']} s after PostgreSQL was back; "
              f"failed after recovery {result['failed_after_recovery']} of {result['requests_after_recovery']}; "
              f"max latency {result['max_latency_ms']} ms; app restarted: {result['app_restarted']}; "
              f"5xx pages {result['pages_5xx']}; idle pool after its connections were closed: "
              f"{result['idle_pool']['failed']} of {result['idle_pool']['requests']} page loads failed; failed cleanly: {result['failed_cleanly']}; "
              f"recovered: {result['recovered']}; missing {result['missing_saves']}; ok={result['ok']}", flush=True)
    if args.scenario == "idle-pool":
        result = idle_pool(args)
        summary["idle_pool"] = result
        print(f"idle-pool: {result['connections_closed']} connections closed under the idle app; "
              f"{result['failed']} of {result['requests']} page loads failed {result['statuses']}; "
              f"ok={result['ok']}", flush=True)
    ok = (all(r["ok"] for r in summary.get("kill9", {}).values())
          and all(summary.get(k, {}).get("ok", True) for k in ("pg_restart", "idle_pool")))
    summary["ok"] = ok
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
