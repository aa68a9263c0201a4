"""A small PromQL scanner for the CI checks (python3 stdlib only).

It does not evaluate PromQL; it finds the vector selectors of an expression, with their label
matchers, and the range of every rate-like function, which is all the dashboard lint needs.
"""

import re

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "atan2", "inf", "nan", "start", "end",
}
AGGREGATORS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
RATE_FUNCTIONS = {"rate", "irate", "increase"}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>(?:0x[0-9a-fA-F]+|[0-9][0-9a-zA-Z.]*|\.[0-9]+(?:[eE][+-]?[0-9]+)?))
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>==|!=|=~|!~|<=|>=|[-+*/%^<>=(){},@])
  | (?P<var>\$\{?[a-zA-Z_][a-zA-Z0-9_:]*\}?)
    """,
    re.VERBOSE,
)


class PromQLError(ValueError):
    pass


def tokens(expr):
    out = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise PromQLError(f"cannot read {expr[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        out.append((kind, m.group()))
    return out


def _matchers(toks, i):
    """Parses `{...}` starting at toks[i] == '{'; returns ({label: [(op, value)]}, next index)."""
    matchers = {}
    i += 1
    while i < len(toks) and toks[i][1] != "}":
        kind, text = toks[i]
        if kind == "op" and text == ",":
            i += 1
            continue
        if kind == "string":  # a quoted metric name, Prometheus 3 style
            matchers.setdefault("__name__", []).append(("=", text[1:-1]))
            i += 1
            continue
        if kind != "ident" or i + 2 >= len(toks):
            raise PromQLError(f"bad label matcher near {text!r}")
        op, value = toks[i + 1], toks[i + 2]
        if op[1] not in ("=", "!=", "=~", "!~") or value[0] != "string":
            raise PromQLError(f"bad label matcher near {text!r}")
        matchers.setdefault(text, []).append((op[1], value[1][1:-1]))
        i += 3
    if i >= len(toks):
        raise PromQLError("unclosed {")
    return matchers, i + 1


def selectors(expr):
    """Every vector selector of `expr` as (metric name or None, {label: [(op, value)]})."""
    toks = tokens(expr)
    out = []
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "ident" and text in LABEL_LIST_KEYWORDS and nxt == "(":
            depth, i = 0, i + 1
            while i < len(toks):
                if toks[i][1] == "(":
                    depth += 1
                elif toks[i][1] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            i += 1
            continue
        if kind == "ident":
            if text.lower() in KEYWORDS or text in AGGREGATORS or nxt == "(":
                i += 1
                continue
            if nxt == "{":
                matchers, i = _matchers(toks, i + 1)
            else:
                matchers, i = {}, i + 1
            out.append((text, matchers))
            continue
        if kind == "op" and text == "{":
            matchers, i = _matchers(toks, i)
            out.append((None, matchers))
            continue
        i += 1
    return out


def rate_ranges(expr):
    """The range written inside every rate(), irate() and increase() call of `expr`."""
    toks = tokens(expr)
    out = []
    for i, (kind, text) in enumerate(toks):
        if kind == "ident" and text in RATE_FUNCTIONS and i + 1 < len(toks) and toks[i + 1][1] == "(":
            depth, j, found = 0, i + 1, None
            while j < len(toks):
                if toks[j][1] == "(":
                    depth += 1
                elif toks[j][1] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                elif toks[j][0] == "range" and depth == 1 and found is None:
                    found = toks[j][1][1:-1].strip()
                j += 1
            out.append((text, found))
    return out
