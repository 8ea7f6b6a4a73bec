"""Load and fault tests: they drive scripts/load_test.py and scripts/fault_test.py as a user would,
in a short mode, and read the JSON object each script prints as its last line."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess  # nosec B404 — runs our own scripts with argument lists
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


# The scripts bound every wait of their own (server start, the load's goal); this only catches a
# script that hangs outright, so it is far above what a slow machine needs.
SCRIPT_TIMEOUT_S = 900


def _test_url() -> str:
    return os.environ.get("KEPU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/kepu_test")


def pg_server_url() -> str:
    """The PostgreSQL server of KEPU_TEST_PG_URL; the scripts create their own throw-away databases."""
    return make_url(_test_url()).set(database="postgres").render_as_string(hide_password=False)


def throwaway_prefix() -> str:
    """`<test database>_`: the throw-away databases of this run are named after its test database
    (kepu_test_load_smoke, kepu_h2_fault_kill9), so runs against different test databases on one
    server never drop each other's."""
    name = re.sub(r"[^a-z0-9_]", "_", (make_url(_test_url()).database or "kepu_test").lower())
    return (name if name.startswith("kepu_") else f"kepu_{name}") + "_"


def run_script(name: str, *args: str, timeout: float = SCRIPT_TIMEOUT_S) -> tuple[int, dict, str]:
    """(exit status, the last line's JSON, the whole output)."""
    done = subprocess.run([sys.executable, str(SCRIPTS / name), *args], cwd=ROOT, capture_output=True,  # nosec B603
                          text=True, timeout=timeout, check=False)
    output = done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, f"{name} printed nothing:\n{output[-3000:]}"
    try:
        summary = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        raise AssertionError(f"{name}: last line is not JSON:\n{output[-3000:]}") from e
    return done.returncode, summary, output


def load_test_module():
    spec = importlib.util.spec_from_file_location("kepu_load_test_script", SCRIPTS / "load_test.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
