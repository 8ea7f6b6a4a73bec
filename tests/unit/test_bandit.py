"""`bandit -r app -c bandit.yaml` is clean: every HIGH or MEDIUM finding is either fixed or listed in
bandit.yaml's `allow` (file, test id, how many, why). A new occurrence changes a count and fails here until
someone has looked at it; an entry that no longer matches anything fails too, so the list stays true."""

from __future__ import annotations

import json
import re
import subprocess  # nosec B404 — runs the bandit executable of this venv with an argument list
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "bandit.yaml"
BANDIT = Path(sys.executable).with_name("bandit")
GATED = {"HIGH", "MEDIUM"}


@pytest.fixture(scope="module")
def report() -> dict:
    assert BANDIT.exists(), f"bandit is not installed in the venv ({BANDIT})"
    done = subprocess.run([str(BANDIT), "-r", "app", "-c", str(CONFIG), "-q", "-f", "json"],  # nosec B603
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.stdout, f"bandit printed nothing: {done.stderr[-2000:]}"
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def _found(report: dict, severities: set[str] | None = None) -> Counter:
    return Counter((r["test_id"], r["filename"]) for r in report["results"]
                   if severities is None or r["issue_severity"] in severities)


def test_bandit_ran_over_the_whole_package(report):
    assert not report["errors"], report["errors"]
    assert report["metrics"]["_totals"]["loc"] > 5000  # it really read app/


def test_no_unexplained_high_or_medium_finding(report, config):
    allowed = {(a["test"], a["file"]): a for a in config["allow"]}
    problems = []
    for (test_id, filename), n in sorted(_found(report, GATED).items()):
        entry = allowed.get((test_id, filename))
        if entry is None:
            lines = [r["line_number"] for r in report["results"]
                     if (r["test_id"], r["filename"]) == (test_id, filename)]
            problems.append(f"{test_id} in {filename} (lines {lines}): fix it, or explain it in bandit.yaml")
        elif entry["count"] != n:
            problems.append(f"{test_id} in {filename}: {n} findings, bandit.yaml explains {entry['count']} — "
                            "look at the new or removed one and update the entry")
    assert not problems, "\n".join(problems)


def test_every_allow_entry_still_matches_and_has_a_reason(report, config):
    found = _found(report)
    for entry in config["allow"]:
        key = (entry["test"], entry["file"])
        assert len(str(entry.get("reason", "")).strip()) >= 20, f"{key}: say why it is safe"
        assert found.get(key), f"{key}: bandit no longer reports it — remove the entry from bandit.yaml"
        assert found[key] == entry["count"], f"{key}: {found[key]} findings, the entry says {entry['count']}"


def test_the_configuration_silences_nothing(config):
    # Skipping a test, or choosing which tests run, would hide findings instead of explaining them.
    assert not {"skips", "tests", "any_other_function_with_shell_equals_true"} & set(config), config.keys()
    assert config.get("exclude_dirs") in (None, [])


def test_every_nosec_names_the_test_it_silences():
    """A bare `# nosec` hides every finding on its line, present and future."""
    bare = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"#\s*nosec\b(?!\s+B\d{3})", line):
                bare.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bare, "bare # nosec:\n" + "\n".join(bare)
