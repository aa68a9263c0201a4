#!/usr/bin/env python3
"""Lints alerts/ beyond what promtool checks (python3 stdlib only). Exit 1 with every problem.

For every alerting rule in alerts/*.yml:
- a CamelCase name with the shared prefix `TenantExporter`;
- `for:` of at least 5 minutes (a single failed poll must not fire anything);
- `severity` critical, warning or info; a static `summary`; a templated `description` that
  names the tenant's target (or, for the exporter's scrape alerts, its job);
- `runbook_url` pointing at its own section of alerts/runbook.md, which exists;
- promtool unit tests in alerts/tests/ with a non-firing case and a firing case for each
  severity the alert has.

The files are read line by line in the layout this repository uses (no YAML library in the
standard library); a rule written otherwise shows up as a problem, not as a silent pass.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PREFIX = "TenantExporter"
RUNBOOK_URL = "https://git.example.com/noc/tenant-exporter/blob/main/alerts/runbook.md#"
SEVERITIES = {"critical", "warning", "info"}
NO_TARGET = {"TenantExporterDown", "TenantExporterAbsent"}  # about the scrape job itself


def seconds(duration):
    total, rest = 0, duration
    for value, unit in re.findall(r"(\d+)(ms|[smhdwy])", duration):
        total += int(value) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}[unit]
        rest = rest.replace(value + unit, "", 1)
    return total if not rest else None


def rules(path):
    """Yields (name, block lines) for every `- alert:` of a rule file."""
    name, block = None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\s*- (alert|record): (\S+)", line)
        if m:
            if name:
                yield name, block
            name, block = (m.group(2) if m.group(1) == "alert" else None), []
        elif name:
            block.append(line)
    if name:
        yield name, block


def field(block, key):
    for line in block:
        m = re.match(rf"^\s+{key}: ?(.*)$", line)
        if m:
            return m.group(1).strip()
    return None


def annotation_text(block, key):
    """The value of an annotation, folded block scalars included."""
    out, inside, indent = [], False, None
    for line in block:
        m = re.match(rf"^(\s+){key}: ?(.*)$", line)
        if m:
            inside, indent = True, len(m.group(1))
            if m.group(2) not in (">-", ">", "|", "|-"):
                out.append(m.group(2))
            continue
        if inside:
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            out.append(line.strip())
    return " ".join(out).strip()


def tests():
    """{alertname: {"nonfiring": bool, "severities": set}} from alerts/tests/*.yml and
    alerts/*_test.yml."""
    found = {}
    files = sorted((ROOT / "alerts/tests").glob("*.yml")) + sorted((ROOT / "alerts").glob("*_test.yml"))
    for path in files:
        current, firing = None, False
        for line in path.read_text(encoding="utf-8").splitlines():
            m = re.match(r"^\s*alertname: (\S+)", line)
            if m:
                current, firing = m.group(1), False
                found.setdefault(current, {"nonfiring": False, "severities": set()})
                continue
            if current is None:
                continue
            if re.match(r"^\s*exp_alerts: \[\]\s*$", line):
                found[current]["nonfiring"] = True
                current = None
            elif re.match(r"^\s*exp_alerts:\s*$", line):
                firing = True
            elif re.match(r"^\s*- eval_time:", line):
                current = None
            elif firing:
                m = re.match(r"^\s*severity: (\S+)", line)
                if m:
                    found[current]["severities"].add(m.group(1))
    return found


def main():
    problems = []
    runbook = (ROOT / "alerts/runbook.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^## (\S+)\s*$", runbook, flags=re.MULTILINE))
    tested = tests()
    alerts = {}
    for path in sorted((ROOT / "alerts").glob("*.yml")):
        if path.name.endswith("_test.yml"):
            continue
        for name, block in rules(path):
            where = f"{path.relative_to(ROOT)}: {name}"
            sev = field(block, "severity")
            alerts.setdefault(name, set()).add(sev)
            if not re.fullmatch(rf"{PREFIX}[A-Z][A-Za-z0-9]*", name):
                problems.append(f"{where}: not a CamelCase name starting with {PREFIX}")
            f = field(block, "for")
            if f is None:
                problems.append(f"{where}: no `for:`")
            elif (seconds(f) or 0) < 300:
                problems.append(f"{where}: `for: {f}` is shorter than 5m")
            if sev not in SEVERITIES:
                problems.append(f"{where}: severity {sev!r} is not one of {sorted(SEVERITIES)}")
            summary = annotation_text(block, "summary")
            if not summary or "{{" in summary:
                problems.append(f"{where}: summary must be static text")
            desc = annotation_text(block, "description")
            if "{{" not in desc:
                problems.append(f"{where}: description is not templated")
            elif name not in NO_TARGET and "$labels.target" not in desc:
                problems.append(f"{where}: description does not name the target ($labels.target)")
            elif name in NO_TARGET and "$labels.job" not in desc:
                problems.append(f"{where}: description does not name the job ($labels.job)")
            url = field(block, "runbook_url")
            if url != RUNBOOK_URL + name.lower():
                problems.append(f"{where}: runbook_url {url!r} is not {RUNBOOK_URL + name.lower()!r}")
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
    for p in problems:
        print(p, file=sys.stderr)
    print(f"alert lint: {len(alerts)} alerts, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
