"""The alert rules: `promtool check rules` and `promtool test rules` (Debian's prometheus package)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.conftest import ROOT

RULES = ROOT / "config" / "prometheus" / "rules" / "plantwatch.yml"
RULE_TESTS = ROOT / "config" / "prometheus" / "tests" / "plantwatch.test.yml"


def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("promtool is not installed; .ci/run should have installed the prometheus package")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return exe


def test_rules_are_valid() -> None:
    proc = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = sum(len(group["rules"]) for group in yaml.safe_load(RULES.read_text())["groups"])
    assert f"SUCCESS: {expected} rules found" in proc.stdout


def test_rule_unit_tests_pass() -> None:
    proc = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_rule_has_a_unit_test() -> None:
    import yaml

    rules = yaml.safe_load(RULES.read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case.get("alert_rule_test", [])}
    assert names == tested
