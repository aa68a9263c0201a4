# Sourced by .ci/run and .ci/e2e.sh: a venv, target/ci-venv, that adds PyPI promql-parser (the
# PromQL parser of .ci/promql.py) to Debian's python3 and python3-yaml, and goes first in PATH
# so every `python3` of the checks is its. Pinned; pip skips it when that version is there.
PROMQL_PARSER_VERSION=0.11.0
ci_venv="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/ci-venv"
[ -x "$ci_venv/bin/python3" ] || python3 -m venv --system-site-packages "$ci_venv"
timeout 300 "$ci_venv/bin/pip" install -q --disable-pip-version-check "promql-parser==$PROMQL_PARSER_VERSION"
export PATH="$ci_venv/bin:$PATH"
