"""PromQL for the CI checks, read by a real parser: PyPI promql-parser (Python bindings of the
Rust crate promql-parser). It does not evaluate anything; it lists the vector selectors of an
expression, with their label matchers, and the range of every rate-like function.

Grafana's interval variables ([$__rate_interval], [$__range], ...) are not PromQL: each is
parsed as a placeholder duration that no query writes, and reported back by its name.
"""

import datetime
import re

import promql_parser as pp

GRAFANA_RANGES = ("__rate_interval", "__interval", "__range")
PLACEHOLDERS = {datetime.timedelta(milliseconds=90001 + i): f"${v}" for i, v in enumerate(GRAFANA_RANGES)}
GRAFANA_RANGE = re.compile(r"\$\{?(" + "|".join(GRAFANA_RANGES) + r")\}?(?![a-zA-Z0-9_])")
OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}
RATE_FUNCTIONS = {"rate", "irate", "increase"}


class PromQLError(ValueError):
    pass


def parse(expr):
    ms = {v: int(k / datetime.timedelta(milliseconds=1)) for k, v in PLACEHOLDERS.items()}
    try:
        return pp.parse(GRAFANA_RANGE.sub(lambda m: f"{ms['$' + m.group(1)]}ms", expr))
    except ValueError as e:
        raise PromQLError(str(e)) from None


def nodes(expr, kind):
    out = []
    pp.walk(parse(expr), lambda n: out.append(n) if isinstance(n, kind) else None)
    return out


def selectors(expr):
    """Every vector selector of `expr` as (metric name or None, {label: [(op, value)]}); a
    selector with `or` between its matcher sets counts once per set."""
    out = []
    for s in nodes(expr, pp.VectorSelector):
        for group in s.matchers.or_matchers or [s.matchers.matchers]:
            matchers = {}
            for m in group:
                matchers.setdefault(m.name, []).append((OPS[str(m.op).rsplit(".", 1)[-1]], m.value))
            out.append((s.name, matchers))
    return out


def rate_ranges(expr):
    """(function, range) of every rate(), irate() and increase() call of `expr`: the range as
    Grafana's variable ("$__rate_interval") or as PromQL writes a duration ("1d")."""
    out = []
    for call in nodes(expr, pp.Call):
        if call.func.name in RATE_FUNCTIONS:
            rng = next((a.range for a in call.args if isinstance(a, pp.MatrixSelector)), None)
            out.append((call.func.name, PLACEHOLDERS.get(rng) or (rng and pp.display_duration(rng))))
    return out
