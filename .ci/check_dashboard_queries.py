#!/usr/bin/env python3
"""Runs every query of every dashboard against a live Prometheus (python3, PyPI promql-parser).

Resolves the dashboards' variables the way Grafana does (each query variable from its
label_values() query; "All" as the variable's allValue), substitutes them and Grafana's
interval variables, and requires
- every metric name in every selector of every query and variable to exist in Prometheus
  (a broken name in one branch of an `or`, or under an `and`, fails even when the query as a
  whole returns data), and
- every panel query to return at least one series.
Queries are retried until DEADLINE seconds have passed, so rates get their second sample.

Grafana's interval variables follow the data source's scrape interval SCRAPE_SECONDS (what
the README tells users to set in Grafana): $__interval is at least the scrape interval, and
$__rate_interval = max($__interval + scrape interval, 4 * scrape interval).

--self-test renames, one at a time, the metric of every selector of every query and checks
that the name check reports each one (against the names Prometheus has).

    check_dashboard_queries.py [--self-test] PROMETHEUS_URL [DEADLINE_SECONDS] [DASHBOARD_DIR] [SCRAPE_SECONDS]
"""

import json
import pathlib
import re
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import promql  # noqa: E402

RANGE_SECONDS = 6 * 3600  # the dashboards' default time range
MAX_DATA_POINTS = 1000    # about what Grafana asks for on a full-width panel


def builtins(scrape):
    """Grafana's built-in variables for a 6-hour range with data source scrape interval
    `scrape` seconds: $__interval is range / data points rounded up to a whole second, at
    least the scrape interval; $__rate_interval = max($__interval + scrape, 4 * scrape)."""
    interval = max(scrape, -(-RANGE_SECONDS // MAX_DATA_POINTS))
    rate = max(interval + scrape, 4 * scrape)
    return {
        "__rate_interval": f"{rate}s",
        "__interval": f"{interval}s",
        "__interval_ms": str(interval * 1000),
        "__range": f"{RANGE_SECONDS}s",
        "__range_s": str(RANGE_SECONDS),
        "__range_ms": str(RANGE_SECONDS * 1000),
    }


def metric_names(expr):
    """The metric names `expr` selects: plain names and the alternatives of __name__=~"a|b"."""
    out = set()
    for name, matchers in promql.selectors(expr):
        if name:
            out.add(name)
        for op, value in matchers.get("__name__", []):
            if op == "=":
                out.add(value)
            elif op == "=~" and re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*(\|[a-zA-Z_:][a-zA-Z0-9_:]*)*", value):
                out.update(value.split("|"))
    return out


def missing(expr, known):
    return sorted(metric_names(expr) - known)
VAR = re.compile(r"\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?\}|\$([a-zA-Z_][a-zA-Z0-9_]*)")
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*)\s*,\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$", re.S)


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, params):
        q = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=10) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr):
        data = self.get("/api/v1/query", {"query": expr})
        if data["resultType"] in ("vector", "matrix"):
            return len(data["result"])
        return 1  # a scalar or string

    def label_values(self, label, selector):
        params = {"match[]": [selector]} if selector else {}
        return self.get(f"/api/v1/label/{label}/values", params)


def substitute(text, values):
    def repl(m):
        name = m.group(1) or m.group(2)
        if name in values:
            return values[name]
        return m.group(0)
    return VAR.sub(repl, text)


def unresolved(text):
    return sorted({m.group(1) or m.group(2) for m in VAR.finditer(text)})


def variable_query(v):
    q = v.get("query")
    if isinstance(q, dict):
        q = q.get("query")
    return q or v.get("definition") or ""


def poll(ask, empty, deadline):
    """Calls ask() each second until it returns something truthy or the deadline passes.

    Returns the last answer (or `empty` after an error) and the last error, if any."""
    while True:
        try:
            got, err = ask(), None
        except Exception as e:  # noqa: BLE001 - report and retry until the deadline
            got, err = empty, e
        if got or time.monotonic() > deadline:
            return got, err
        time.sleep(1)


def queries(d):
    """(label, expr) of every panel query of dashboard `d`."""
    panels = []
    for p in d.get("panels", []):
        panels.append(p)
        panels.extend(p.get("panels", []) if p.get("type") == "row" else [])
    for p in panels:
        for t in p.get("targets", []):
            yield f"panel {p.get('id')} {p.get('title')!r} query {t.get('refId')}", t.get("expr", "")


def self_test(known, root):
    """Every selector's metric renamed once must be reported by missing()."""
    checked, problems = 0, []
    for path in sorted(root.glob("*.json")):
        d = json.loads(path.read_text(encoding="utf-8"))
        for label, expr in queries(d):
            for name in sorted(metric_names(expr)):
                broken = re.sub(rf"(?<![a-zA-Z0-9_:]){re.escape(name)}(?![a-zA-Z0-9_:])", name + "_broken", expr)
                checked += 1
                if name + "_broken" not in missing(broken, known):
                    problems.append(f"{path.name}: {label}: renaming {name} is not reported: {broken}")
    for p in problems:
        print(f"FAIL {p}")
    print(f"dashboard query self-test: {checked} renamed metrics, {len(problems)} not caught")
    return 1 if problems or not checked else 0


def main(argv):
    test = "--self-test" in argv
    argv = [a for a in argv if a != "--self-test"]
    prom = Prometheus(argv[1])
    deadline = time.monotonic() + (float(argv[2]) if len(argv) > 2 else 60)
    root = pathlib.Path(argv[3] if len(argv) > 3 else pathlib.Path(__file__).resolve().parent.parent / "dashboards")
    scrape = int(argv[4]) if len(argv) > 4 else 1
    known, err = poll(lambda: set(prom.get("/api/v1/label/__name__/values", {})), set(), deadline)
    if not known:
        print(f"FAIL no metric names from Prometheus{f' ({err})' if err else ''}")
        return 1
    if test:
        return self_test(known, root)
    print(f"Grafana variables for a {scrape} s scrape interval: {builtins(scrape)}")

    def names_missing(expr):
        """Metric names of `expr` Prometheus does not have; waits (until the deadline) for
        names that appear later: recording rules after their first evaluation, ALERTS."""
        def ask():
            if missing(expr, known):
                known.update(prom.get("/api/v1/label/__name__/values", {}))
            return not missing(expr, known)
        poll(ask, False, deadline)
        return missing(expr, known)

    passed, failed = 0, []
    for path in sorted(root.glob("*.json")):
        d = json.loads(path.read_text(encoding="utf-8"))
        values = dict(builtins(scrape))
        values["datasource"] = "prometheus"
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            name, query = v["name"], substitute(variable_query(v), values)
            lv = LABEL_VALUES.match(query)
            gone = names_missing(lv.group(1) or "" if lv else query)
            if gone:
                failed.append(f"{path.name}: variable ${name}: no such metric {', '.join(gone)}: {query}")
            m = LABEL_VALUES.match(query)
            if not m:
                failed.append(f"{path.name}: variable ${name}: not a label_values() query: {query}")
                continue
            got, err = poll(lambda: prom.label_values(m.group(2), m.group(1)), [], deadline)
            if got:
                passed += 1
                print(f"ok   {path.name}: variable ${name} = {', '.join(got[:5])}{' ...' if len(got) > 5 else ''}")
            else:
                failed.append(f"{path.name}: variable ${name}: {query} returned no values{f' ({err})' if err else ''}")
            if v.get("includeAll") and v.get("allValue"):
                values[name] = v["allValue"]
            elif v.get("includeAll") or v.get("multi"):
                values[name] = "(" + "|".join(re.escape(x) for x in got) + ")" if got else ".*"
            else:
                values[name] = got[0] if got else ""

        for label, raw in queries(d):
            label = f"{path.name}: {label}"
            expr = substitute(raw, values)
            left = [x for x in unresolved(expr)]
            if left:
                failed.append(f"{label}: unresolved variables {left}: {expr}")
                continue
            gone = names_missing(expr)
            if gone:
                failed.append(f"{label}: no such metric {', '.join(gone)}: {expr}")
                continue
            n, err = poll(lambda: prom.query(expr), 0, deadline)
            if n:
                passed += 1
                print(f"ok   {label}: {n} series")
            else:
                failed.append(f"{label}: no series{f' ({err})' if err else ''}: {expr}")
    for f in failed:
        print(f"FAIL {f}")
    print(f"dashboard queries: {passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
