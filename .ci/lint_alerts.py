#!/usr/bin/env python3
"""Lints alerts/ beyond what promtool checks (PyYAML; PyPI promql-parser: .ci/promql.py). Exit
1 with every problem.

For every rule in alerts/*.yml (generated from mixin/):
- every vector selector of every expression (alerts and recording rules) has a `job` matcher:
  the mixin's job selector reached it;
- alerts: a CamelCase name with the shared prefix `TenantExporter`; `for:` of at least 5
  minutes (a single failed poll must not fire anything); `severity` critical, warning or info;
  `team` and `scope` (exporter, collector, target, tenant: the inhibition chain) labels; a
  static `summary`; a templated `description` that names the tenant's target (or, for the
  exporter's scrape alerts, its job); a `runbook_url` ending in its own section of
  alerts/runbook.md, which exists, the same base for every alert;
- tenant and target alerts keep firing for a while (`keep_firing_for`), so a pod rename or a
  stale target does not resolve them silently;
- promtool unit tests in alerts/tests/ with a non-firing case and a firing case for each
  severity the alert has.
"""

import pathlib
import re
import sys

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import promql  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
PREFIX = "TenantExporter"
SEVERITIES = {"critical", "warning", "info"}
SCOPES = {"exporter", "collector", "target", "tenant"}
NO_TARGET = {"TenantExporterDown", "TenantExporterAbsent"}  # about the scrape job itself
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration):
    parts = re.findall(r"(\d+)(ms|[smhdwy])", duration or "")
    if "".join(v + u for v, u in parts) != (duration or "x"):
        return None
    return sum(int(v) * UNITS[u] for v, u in parts)


def rule_files():
    return sorted(p for p in (ROOT / "alerts").glob("*.yml") if not p.name.endswith("_test.yml"))


def tests():
    """{alertname: {"nonfiring": bool, "severities": set}} from alerts/tests/*.yml."""
    found = {}
    for path in sorted((ROOT / "alerts/tests").glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8")).get("tests", []):
            for case in group.get("alert_rule_test", []):
                t = found.setdefault(case["alertname"], {"nonfiring": False, "severities": set()})
                exp = case.get("exp_alerts") or []
                if not exp:
                    t["nonfiring"] = True
                for a in exp:
                    t["severities"].add((a.get("exp_labels") or {}).get("severity"))
    return found


def main():
    problems = []
    runbook = (ROOT / "alerts/runbook.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^## (\S+)\s*$", runbook, flags=re.MULTILINE))
    tested = tests()
    alerts, bases = {}, set()
    for path in rule_files():
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                where = f"{path.relative_to(ROOT)}: {name}"
                try:
                    for metric, matchers in promql.selectors(rule["expr"]):
                        if "job" not in matchers:
                            problems.append(f"{where}: selector {metric or '{...}'} has no job matcher")
                except promql.PromQLError as e:
                    problems.append(f"{where}: cannot parse the expression: {e}")
                if "alert" not in rule:
                    continue
                labels, ann = rule.get("labels", {}), rule.get("annotations", {})
                sev, scope = labels.get("severity"), labels.get("scope")
                alerts.setdefault(name, set()).add(sev)
                if not re.fullmatch(rf"{PREFIX}[A-Z][A-Za-z0-9]*", name):
                    problems.append(f"{where}: not a CamelCase name starting with {PREFIX}")
                f = rule.get("for")
                if f is None:
                    problems.append(f"{where}: no `for:`")
                elif (seconds(f) or 0) < 300:
                    problems.append(f"{where}: `for: {f}` is shorter than 5m")
                if sev not in SEVERITIES:
                    problems.append(f"{where}: severity {sev!r} is not one of {sorted(SEVERITIES)}")
                if scope not in SCOPES:
                    problems.append(f"{where}: scope {scope!r} is not one of {sorted(SCOPES)}")
                if not labels.get("team"):
                    problems.append(f"{where}: no team label")
                if scope in ("target", "tenant") and not seconds(rule.get("keep_firing_for")):
                    problems.append(f"{where}: a {scope} alert without keep_firing_for resolves on every pod rename")
                summary = ann.get("summary", "")
                if not summary or "{{" in summary:
                    problems.append(f"{where}: summary must be static text")
                desc = ann.get("description", "")
                if "{{" not in desc:
                    problems.append(f"{where}: description is not templated")
                elif name not in NO_TARGET and "$labels.target" not in desc:
                    problems.append(f"{where}: description does not name the target ($labels.target)")
                elif name in NO_TARGET and "$labels.job" not in desc:
                    problems.append(f"{where}: description does not name the job ($labels.job)")
                url = ann.get("runbook_url", "")
                if not url.endswith("#" + name.lower()):
                    problems.append(f"{where}: runbook_url {url!r} does not end in #{name.lower()}")
                bases.add(url.rsplit("#", 1)[0])
    if len(bases) > 1:
        problems.append(f"runbook_url: alerts point at different runbooks: {sorted(bases)}")
    for name, severities in sorted(alerts.items()):
        if name not in sections:
            problems.append(f"alerts/runbook.md: no '## {name}' section")
        t = tested.get(name)
        if not t:
            problems.append(f"{name}: no promtool unit test")
            continue
        if not t["nonfiring"]:
            problems.append(f"{name}: no non-firing case (exp_alerts: []) in the unit tests")
        for sev in severities - t["severities"]:
            problems.append(f"{name}: no firing case with severity {sev} in the unit tests")
    for name in sorted(set(tested) - set(alerts)):
        problems.append(f"alerts/tests: a test for {name}, which no rule file defines")
    for name in sorted(sections - set(alerts) - {"Conventions"}):
        problems.append(f"alerts/runbook.md: section '## {name}' for an alert no rule file defines")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"alert lint: {len(alerts)} alerts, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
