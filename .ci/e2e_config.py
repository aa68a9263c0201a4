#!/usr/bin/env python3
"""Writes the e2e test's runtime configuration from the shipped files (PyYAML).

- OUT/prometheus.yml from deploy/prometheus/prometheus.yml: 1 s scrape and evaluation
  intervals, the exporter's and Alertmanager's test addresses, rules from OUT/rules/.
- OUT/rules/*.yml: copies of alerts/*.yml with every `for:` shortened to FOR, so that alerts
  fire within the test's bounded waits. The shipped rules keep their real durations.
- OUT/alertmanager.yml from deploy/alertmanager/alertmanager.example.yml: every receiver's
  URL pointed at the test's webhook, 1 s group_wait and group_interval.
- OUT/prometheus-prod.yml: the shipped scrape and evaluation intervals unchanged, the shipped
  rules unchanged (OUT/rules-prod/), no Alertmanager: what the dashboards see in production.
  OUT/scrape_seconds holds that scrape interval in seconds, for Grafana's $__rate_interval.

Every field changed here must be there (a KeyError or an assertion otherwise), so a change to
the shipped files that the test would silently stop exercising fails here instead.

    e2e_config.py OUT EXPORTER_ADDR ALERTMANAGER_ADDR WEBHOOK_URL [FOR]
"""

import pathlib
import re
import shutil
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXPORTER = "tenant-exporter:10020"  # the compose service Prometheus scrapes


def prometheus(rules, exporter, alertmanager=None, interval=None):
    """deploy/prometheus/prometheus.yml with rules from `rules`, the exporter at `exporter`,
    Alertmanager at `alertmanager` (none if None) and both intervals `interval` (if given)."""
    c = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    if interval:
        c["global"].update(scrape_interval=interval, evaluation_interval=interval)
    assert c["rule_files"] == ["/etc/prometheus/rules/*.yml"], c["rule_files"]
    c["rule_files"] = [f"{rules}/*.yml"]
    [am] = c["alerting"]["alertmanagers"]
    if alertmanager:
        am["static_configs"] = [{"targets": [alertmanager]}]
    else:
        del c["alerting"]
    [job] = c["scrape_configs"]
    assert job["static_configs"] == [{"targets": [EXPORTER]}], job["static_configs"]
    job["static_configs"] = [{"targets": [exporter]}]
    return yaml.safe_dump(c, sort_keys=False)


def main(out, exporter, alertmanager, webhook, for_="3s"):
    out = pathlib.Path(out)
    rules, prod_rules = out / "rules", out / "rules-prod"
    rules.mkdir(parents=True, exist_ok=True)
    (out / "prometheus.yml").write_text(prometheus(rules, exporter, alertmanager, "1s"))

    shortened = 0
    for f in sorted((ROOT / "alerts").glob("*.yml")):
        r = yaml.safe_load(f.read_text())
        for rule in (rule for g in r["groups"] for rule in g["rules"] if "for" in rule):
            rule["for"] = for_
            shortened += 1
        (rules / f.name).write_text(yaml.safe_dump(r, sort_keys=False))
    if shortened == 0:
        sys.exit("e2e_config: no `for:` found in alerts/*.yml")

    prod_rules.mkdir(exist_ok=True)
    for f in sorted((ROOT / "alerts").glob("*.yml")):
        shutil.copy(f, prod_rules)
    (out / "prometheus-prod.yml").write_text(prometheus(prod_rules, exporter))
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())["global"]["scrape_interval"]
    m = re.fullmatch(r"(\d+)([smh])", scrape)
    (out / "scrape_seconds").write_text(str(int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]))

    am = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.example.yml").read_text())
    am["route"].update(group_wait="1s", group_interval="1s")
    hooks = [h for r in am["receivers"] for h in r.get("webhook_configs", [])]
    assert hooks, "no webhook receivers in the Alertmanager example"
    for hook in hooks:
        hook["url"] = webhook
    (out / "alertmanager.yml").write_text(yaml.safe_dump(am, sort_keys=False))
    print(f"e2e_config: wrote {out}/prometheus.yml, {out}/alertmanager.yml and "
          f"{len(list(rules.glob('*.yml')))} rule files with {shortened} `for:` set to {for_}")


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    main(*sys.argv[1:])
