#!/usr/bin/env python3
"""Runs every query of every dashboard against a live Prometheus (python3 stdlib only).

Resolves the dashboards' variables the way Grafana does (each query variable from its
label_values() query; "All" as the variable's allValue), substitutes them and Grafana's
interval variables, and requires every panel query to return at least one series. Queries are
retried until DEADLINE seconds have passed, so rates get their second sample.

    check_dashboard_queries.py PROMETHEUS_URL [DEADLINE_SECONDS] [DASHBOARD_DIR]
"""

import json
import pathlib
import re
import sys
import time
import urllib.parse
import urllib.request

# What Grafana puts in its built-in variables for a 6-hour dashboard on a 1 s scrape.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "6h",
    "__range_s": "21600",
    "__range_ms": "21600000",
}
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


def main(argv):
    prom = Prometheus(argv[1])
    deadline = time.monotonic() + (float(argv[2]) if len(argv) > 2 else 60)
    root = pathlib.Path(argv[3] if len(argv) > 3 else pathlib.Path(__file__).resolve().parent.parent / "dashboards")
    passed, failed = 0, []
    for path in sorted(root.glob("*.json")):
        d = json.loads(path.read_text(encoding="utf-8"))
        values = dict(BUILTINS)
        values["datasource"] = "prometheus"
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            name, query = v["name"], substitute(variable_query(v), values)
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

        panels = []
        for p in d.get("panels", []):
            panels.append(p)
            panels.extend(p.get("panels", []) if p.get("type") == "row" else [])
        for p in panels:
            for t in p.get("targets", []):
                label = f"{path.name}: panel {p.get('id')} {p.get('title')!r} query {t.get('refId')}"
                expr = substitute(t.get("expr", ""), values)
                left = [x for x in unresolved(expr)]
                if left:
                    failed.append(f"{label}: unresolved variables {left}: {expr}")
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
