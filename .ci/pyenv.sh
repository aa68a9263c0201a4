# Sourced by .ci/run and .ci/e2e.sh: a venv, target/ci-venv, with PyPI promql-parser (the PromQL
# parser of .ci/promql.py) and PyYAML, first in PATH so every `python3` of the checks is its,
# whichever python3 the machine has. Pinned; pip skips what is there at that version.
PROMQL_PARSER_VERSION=0.11.0
PYYAML_VERSION=6.0.3
ci_venv="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/ci-venv"
[ -x "$ci_venv/bin/python3" ] || python3 -m venv "$ci_venv"
timeout 300 "$ci_venv/bin/pip" install -q --disable-pip-version-check \
  "promql-parser==$PROMQL_PARSER_VERSION" "PyYAML==$PYYAML_VERSION"
export PATH="$ci_venv/bin:$PATH"
