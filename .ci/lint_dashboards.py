#!/usr/bin/env python3
"""Lints dashboards/*.json (PyPI promql-parser reads the queries: .ci/promql.py). Exit 1 with
every problem listed.

- valid JSON; a dashboard object with a fixed, unique `uid`, a unique title, tags and a
  current `schemaVersion`
- template variables `datasource` (Prometheus), `job` and `target`, the query variables on
  `${datasource}`; every variable a query uses is defined
- every panel (rows excepted) and every query on `${datasource}`; panel ids unique; an alert
  list panel filters on the job
- every vector selector of every query has a `job` matcher
- rate() and irate() use `$__rate_interval`; increase() too, or `$__range`, or a fixed window
  of at least an hour ("in the last 24 hours" tables)
- no `or vector(...)` and no `or ... 0 * ...`: a query that returns data whatever happens
  hides a broken metric name
"""

import json
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import promql  # noqa: E402

MIN_SCHEMA_VERSION = 39  # Grafana 11; Grafana 12 writes 41 and 42
DATASOURCE_UIDS = {"${datasource}", "$datasource"}
REQUIRED_VARIABLES = ("datasource", "job", "target")
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms"}
VARIABLE = re.compile(r"\$\{?([a-zA-Z_][a-zA-Z0-9_]*)")
ALWAYS_DATA = re.compile(r"\bvector\s*\(|\bor\b[^()]*\(?\s*0\s*\*")


def panels_of(dashboard):
    for p in dashboard.get("panels", []):
        yield p
        for q in p.get("panels", []) if p.get("type") == "row" else []:
            yield q


def uses_datasource_variable(ds):
    return isinstance(ds, dict) and ds.get("uid") in DATASOURCE_UIDS


def fixed_window_seconds(rng):
    """Seconds of a PromQL duration such as 1d or 1h30m; 0 for anything else."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|[smhdwy])", rng or "")
    return sum(int(v) * units[u] for v, u in parts) if "".join(v + u for v, u in parts) == rng else 0


def check_expr(where, expr, problems, variables=None):
    if not isinstance(expr, str) or not expr.strip():
        problems.append(f"{where}: empty query")
        return
    try:
        sels = promql.selectors(expr)
        ranges = promql.rate_ranges(expr)
    except promql.PromQLError as e:
        problems.append(f"{where}: cannot parse the query: {e}: {expr}")
        return
    if not sels:
        problems.append(f"{where}: the query selects no series: {expr}")
    for name, matchers in sels:
        if "job" not in matchers:
            problems.append(f"{where}: selector {name or '{...}'} has no job matcher: {expr}")
    for fn, rng in ranges:
        if rng == "$__rate_interval":
            continue
        if fn == "increase" and (rng == "$__range" or fixed_window_seconds(rng) >= 3600):
            continue
        problems.append(f"{where}: {fn}() over [{rng}] instead of [$__rate_interval]: {expr}")
    if ALWAYS_DATA.search(expr):
        problems.append(f"{where}: `or vector(...)` or `or ... 0 * ...` returns data whatever happens: {expr}")
    if variables is not None:
        for name in sorted(set(VARIABLE.findall(expr)) - variables - BUILTIN_VARIABLES):
            problems.append(f"{where}: uses ${name}, which the dashboard does not define: {expr}")


def lint(path, seen_uids, seen_titles, problems):
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        problems.append(f"{path}: not valid JSON: {e}")
        return
    if not isinstance(d, dict) or not isinstance(d.get("panels"), list):
        problems.append(f"{path}: not a dashboard (no panels list)")
        return
    uid = d.get("uid")
    if not isinstance(uid, str) or not uid or len(uid) > 40:
        problems.append(f"{path}: uid must be a fixed string of 1 to 40 characters, got {uid!r}")
    elif uid in seen_uids:
        problems.append(f"{path}: uid {uid!r} is also used by {seen_uids[uid]}")
    else:
        seen_uids[uid] = path
    title = d.get("title")
    if not title:
        problems.append(f"{path}: no title")
    elif title in seen_titles:
        problems.append(f"{path}: title {title!r} is also used by {seen_titles[title]}")
    else:
        seen_titles[title] = path
    if not d.get("tags"):
        problems.append(f"{path}: no tags")
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < MIN_SCHEMA_VERSION:
        problems.append(f"{path}: schemaVersion {d.get('schemaVersion')!r} is older than {MIN_SCHEMA_VERSION}")

    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    for name in REQUIRED_VARIABLES:
        if name not in variables:
            problems.append(f"{path}: no ${name} variable")
    ds = variables.get("datasource")
    if ds and (ds.get("type") != "datasource" or ds.get("query") != "prometheus"):
        problems.append(f"{path}: $datasource must be a Prometheus data source variable")
    for name in ("job", "instance", "target"):
        v = variables.get(name)
        if v is None:
            continue
        if v.get("type") != "query" or not uses_datasource_variable(v.get("datasource")):
            problems.append(f"{path}: ${name} must be a query variable on ${{datasource}}")

    ids = set()
    for p in panels_of(d):
        where = f"{path}: panel {p.get('id')} {p.get('title')!r}"
        if p.get("id") in ids:
            problems.append(f"{where}: duplicate panel id")
        ids.add(p.get("id"))
        if p.get("type") == "row":
            continue
        if p.get("type") == "alertlist":
            if "job" not in (p.get("options") or {}).get("alertInstanceLabelFilter", ""):
                problems.append(f"{where}: the alert list does not filter on the job")
            continue
        if not uses_datasource_variable(p.get("datasource")):
            problems.append(f"{where}: panel datasource is not ${{datasource}}: {p.get('datasource')!r}")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{where}: no queries")
        for t in targets:
            w = f"{where} query {t.get('refId')}"
            if not uses_datasource_variable(t.get("datasource")):
                problems.append(f"{w}: query datasource is not ${{datasource}}: {t.get('datasource')!r}")
            check_expr(w, t.get("expr"), problems, set(variables))


def main(argv):
    root = pathlib.Path(argv[1] if len(argv) > 1 else "dashboards")
    files = sorted(root.glob("*.json"))
    problems = []
    if not files:
        problems.append(f"{root}: no dashboards")
    seen_uids, seen_titles = {}, {}
    for f in files:
        lint(f, seen_uids, seen_titles, problems)
    for p in problems:
        print(p, file=sys.stderr)
    print(f"dashboard lint: {len(files)} dashboards, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
