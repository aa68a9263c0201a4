#!/usr/bin/env python3
"""Writes the e2e test's runtime configuration from the shipped files (python3 stdlib only).

- OUT/prometheus.yml from deploy/prometheus/prometheus.yml: 1 s scrape and evaluation
  intervals, the exporter's and Alertmanager's test addresses, rules from OUT/rules/.
- OUT/rules/*.yml: copies of alerts/*.yml with every `for:` shortened to FOR, so that alerts
  fire within the test's bounded waits. The shipped rules keep their real durations.
- OUT/alertmanager.yml from deploy/alertmanager/alertmanager.example.yml: every receiver's
  URL pointed at the test's webhook, 1 s group_wait and group_interval.
- OUT/prometheus-prod.yml: the shipped scrape and evaluation intervals unchanged, the shipped
  rules unchanged (OUT/rules-prod/), no Alertmanager: what the dashboards see in production.
  OUT/scrape_seconds holds that scrape interval in seconds, for Grafana's $__rate_interval.

Every substitution must match, so a change to the shipped files that the test would silently
stop exercising fails here instead.

    e2e_config.py OUT EXPORTER_ADDR ALERTMANAGER_ADDR WEBHOOK_URL [FOR]
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def sub(text, pattern, repl, what, count=None):
    new, n = re.subn(pattern, repl, text, flags=re.MULTILINE)
    if n == 0 or (count is not None and n != count):
        sys.exit(f"e2e_config: {what}: expected {count or 'some'} match(es) of {pattern!r}, found {n}")
    return new


def main(out, exporter, alertmanager, webhook, for_=("3s",)):
    for_ = for_[0] if isinstance(for_, tuple) else for_
    out = pathlib.Path(out)
    rules = out / "rules"
    rules.mkdir(parents=True, exist_ok=True)

    prom = (ROOT / "deploy/prometheus/prometheus.yml").read_text()
    prom = sub(prom, r"^(\s*)scrape_interval: \S+", r"\1scrape_interval: 1s", "scrape interval", 1)
    prom = sub(prom, r"^(\s*)evaluation_interval: \S+", r"\1evaluation_interval: 1s", "evaluation interval", 1)
    prom = sub(prom, r"- /etc/prometheus/rules/\*\.yml", f"- {rules}/*.yml", "rule files", 1)
    prom = sub(prom, r"'alertmanager:9093'", f"'{alertmanager}'", "Alertmanager address", 1)
    prom = sub(prom, r"'tenant-exporter:10020'", f"'{exporter}'", "exporter address", 1)
    (out / "prometheus.yml").write_text(prom)

    shortened = 0
    for f in sorted((ROOT / "alerts").glob("*.yml")):
        if f.name.endswith("_test.yml"):
            continue
        text = f.read_text()
        text, n = re.subn(r"^(\s+)for: \S+", rf"\g<1>for: {for_}", text, flags=re.MULTILINE)
        shortened += n
        (rules / f.name).write_text(text)
    if shortened == 0:
        sys.exit("e2e_config: no `for:` found in alerts/*.yml")

    prod = (ROOT / "deploy/prometheus/prometheus.yml").read_text()
    m = re.search(r"^\s*scrape_interval: (\d+)([smh])\b", prod, flags=re.MULTILINE)
    if not m:
        sys.exit("e2e_config: no scrape_interval in deploy/prometheus/prometheus.yml")
    (out / "scrape_seconds").write_text(str(int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]))
    prod_rules = out / "rules-prod"
    prod_rules.mkdir(parents=True, exist_ok=True)
    for f in sorted((ROOT / "alerts").glob("*.yml")):
        (prod_rules / f.name).write_text(f.read_text())
    prod = sub(prod, r"- /etc/prometheus/rules/\*\.yml", f"- {prod_rules}/*.yml", "rule files (prod)", 1)
    prod = sub(prod, r"^alerting:\n(?:[ #].*\n|\n)*?(?=^\S)", "", "alerting section (prod)", 1)
    prod = sub(prod, r"'tenant-exporter:10020'", f"'{exporter}'", "exporter address (prod)", 1)
    (out / "prometheus-prod.yml").write_text(prod)

    am = (ROOT / "deploy/alertmanager/alertmanager.example.yml").read_text()
    am = sub(am, r"^(\s*- url: )\S+", rf"\g<1>{webhook}", "receiver URLs")
    am = sub(am, r"^(\s*)group_wait: \S+", r"\1group_wait: 1s", "group_wait")
    am = sub(am, r"^(\s*)group_interval: \S+", r"\1group_interval: 1s", "group_interval")
    (out / "alertmanager.yml").write_text(am)
    print(f"e2e_config: wrote {out}/prometheus.yml, {out}/alertmanager.yml and "
          f"{len(list(rules.glob('*.yml')))} rule files with {shortened} `for:` set to {for_}")


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    main(*sys.argv[1:5], *(sys.argv[5:] or ["3s"]))
