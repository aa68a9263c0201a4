#!/usr/bin/env python3
"""Checks the inhibit rules of deploy/alertmanager/alertmanager.example.yml with a real
Alertmanager (Debian `prometheus-alertmanager`) and the alerts the shipped rules produce.

Starts Alertmanager on 127.0.0.1 (ephemeral port) with the example (receivers pointed at a
closed local port), posts the alerts of each scenario below, and compares which alerts the
Alertmanager API reports as inhibited with what the scenario expects. Every alert's static
labels (severity, team, scope) are read from the generated alerts/*.yml, so a scenario is the
alert as Prometheus would send it. Scenarios are isolated by their `job` label, which every
inhibit rule requires to be equal.

Then, for each inhibit rule in turn, reloads Alertmanager with that rule removed and requires
at least one scenario to fail: every rule is exercised, and the check can fail.

    check_inhibitions.py [ALERTMANAGER_CONFIG]
"""

import copy
import datetime
import json
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent

# (alertname, severity or None when the rule has one, key labels, expected inhibited?)
SCENARIOS = {
    # The exporter is down: collector, target and tenant alerts of the job are muted.
    "down": [
        ("TenantExporterDown", None, {"instance": "pod-a"}, False),
        ("TenantExporterCollectorStale", None, {"collector": "webex_broadworks", "target": "demo"}, True),
        ("TenantExporterCollectorFailing", None, {"collector": "voss_spark_customers", "target": "voss-prod"}, True),
        ("TenantExporterBroadworksDirectorySyncFailed", None, {"target": "demo", "sp_enterprise_id": "E1"}, True),
    ],
    "absent": [
        ("TenantExporterAbsent", None, {}, False),
        ("TenantExporterTenantListEmptied", None, {"target": "cv", "list": "commvault_organizations"}, True),
    ],
    # A stale target: its target-level and tenant alerts and its failing collector are muted;
    # another target's are not.
    "stale": [
        ("TenantExporterCollectorStale", None, {"collector": "webex_broadworks", "target": "demo"}, False),
        ("TenantExporterCollectorFailing", None, {"collector": "webex_broadworks", "target": "demo"}, True),
        ("TenantExporterBroadworksDirectorySyncFailingWidely", None, {"target": "demo"}, True),
        ("TenantExporterBroadworksDirectorySyncFailed", None, {"target": "demo", "sp_enterprise_id": "E1"}, True),
        ("TenantExporterBroadworksDirectorySyncFailed", None, {"target": "other", "sp_enterprise_id": "E9"}, False),
    ],
    # A target-level alert mutes the tenant alerts of its target and team.
    "target": [
        ("TenantExporterBroadworksDirectorySyncFailingWidely", None, {"target": "demo"}, False),
        ("TenantExporterBroadworksDirectorySyncFailed", None, {"target": "demo", "sp_enterprise_id": "E1"}, True),
        ("TenantExporterBroadworksDirectorySyncNoRecentSuccess", None, {"target": "demo", "sp_enterprise_id": "E2"}, True),
        ("TenantExporterBroadworksDirectorySyncFailed", None, {"target": "other", "sp_enterprise_id": "E3"}, False),
        ("TenantExporterTenantListShrank", None, {"target": "webex", "list": "webex_managed_orgs", "admin": "a@x"}, False),
        ("TenantExporterWebexAdminNotRefreshed", None, {"target": "webex", "admin": "b@x"}, True),
        ("TenantExporterVossTokensExpiringWidely", None, {"target": "voss-b"}, False),
        ("TenantExporterVossAccessTokenExpired", None, {"target": "voss-b", "hierarchy": "sys.hcs.B", "customer_name": "B1"}, True),
        ("TenantExporterVossAccessTokenExpired", None, {"target": "voss-c", "hierarchy": "sys.hcs.C", "customer_name": "C1"}, False),
    ],
    # No recent success mutes the same enterprise's failed sync and errors.
    "norecent": [
        ("TenantExporterBroadworksDirectorySyncNoRecentSuccess", None, {"target": "demo", "sp_enterprise_id": "E1"}, False),
        ("TenantExporterBroadworksDirectorySyncFailed", None, {"target": "demo", "sp_enterprise_id": "E1"}, True),
        ("TenantExporterBroadworksDirectorySyncErrors", None, {"target": "demo", "sp_enterprise_id": "E1"}, True),
        ("TenantExporterBroadworksDirectorySyncFailed", None, {"target": "demo", "sp_enterprise_id": "E2"}, False),
    ],
    # VOSS: an expired refresh token is one critical per customer; the critical refresh-token
    # alert mutes its warning.
    "voss": [
        ("TenantExporterVossRefreshTokenExpired", None, {"target": "voss-prod", "hierarchy": "sys.hcs.H", "customer_name": "Hooli"}, False),
        ("TenantExporterVossAccessTokenExpired", None, {"target": "voss-prod", "hierarchy": "sys.hcs.H", "customer_name": "Hooli"}, True),
        ("TenantExporterVossAccessTokenExpired", None, {"target": "voss-prod", "hierarchy": "sys.hcs.A", "customer_name": "Acme"}, False),
        ("TenantExporterVossRefreshTokenExpiring", "critical", {"target": "voss-prod", "hierarchy": "sys.hcs.G", "customer_name": "Globex"}, False),
        ("TenantExporterVossRefreshTokenExpiring", "warning", {"target": "voss-prod", "hierarchy": "sys.hcs.G", "customer_name": "Globex"}, True),
        ("TenantExporterVossAccessTokenExpiring", None, {"target": "voss-prod", "hierarchy": "sys.hcs.G", "customer_name": "Globex"}, False),
    ],
}


def rule_labels():
    """{(alertname, severity): [static labels of each rule]} and {alertname: [severities]} from
    alerts/*.yml."""
    labels, severities = {}, {}
    for f in sorted((ROOT / "alerts").glob("*.yml")):
        for g in yaml.safe_load(f.read_text())["groups"]:
            for r in g["rules"]:
                if "alert" in r:
                    sev = r["labels"]["severity"]
                    labels.setdefault((r["alert"], sev), []).append(dict(r["labels"]))
                    if sev not in severities.setdefault(r["alert"], []):
                        severities[r["alert"]].append(sev)
    return labels, severities


def alerts_of(scenarios, labels, severities):
    out = []
    for job, cases in scenarios.items():
        for name, sev, keys, inhibited in cases:
            sevs = severities.get(name)
            if not sevs:
                sys.exit(f"check_inhibitions: scenario {job}: no rule in alerts/*.yml defines {name}")
            sev = sev or (sevs[0] if len(sevs) == 1 else sys.exit(f"{name} has severities {sevs}: name one"))
            # Rules sharing a name differ in a static label (the list's `list`): the case names it.
            rules = [r for r in labels[(name, sev)] if all(keys.get(k, v) == v for k, v in r.items())]
            if len(rules) != 1:
                sys.exit(f"check_inhibitions: scenario {job}: {name} {keys} matches {len(rules)} rules")
            lab = dict(rules[0], alertname=name, job=job, **keys)
            out.append((lab, inhibited))
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(url, data=None):
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {},
                                 method="POST" if data is not None or url.endswith("/-/reload") else "GET")
    with urllib.request.urlopen(req, timeout=5) as r:
        text = r.read().decode()
        return json.loads(text) if text.strip().startswith(("[", "{")) else text


def wait(what, fn, seconds=20):
    until = time.monotonic() + seconds
    while True:
        try:
            got = fn()
            if got:
                return got
        except OSError:
            pass
        if time.monotonic() > until:
            sys.exit(f"check_inhibitions: timed out waiting for {what}")
        time.sleep(0.2)


def problems(am, expected):
    got = {}
    for a in request(f"{am}/api/v2/alerts?active=true&inhibited=true&silenced=true"):
        got[tuple(sorted(a["labels"].items()))] = bool(a["status"]["inhibitedBy"])
    out = []
    for lab, inhibited in expected:
        k = tuple(sorted(lab.items()))
        if k not in got:
            out.append(f"not in Alertmanager: {lab}")
        elif got[k] != inhibited:
            out.append(f"{'not ' if inhibited else ''}inhibited, expected {'' if inhibited else 'not '}inhibited: "
                       f"{lab['job']}: {lab['alertname']} {({k: v for k, v in lab.items() if k not in ('alertname', 'job', 'team', 'scope')})}")
    return out


def main(argv):
    config_path = pathlib.Path(argv[1]) if len(argv) > 1 else ROOT / "deploy/alertmanager/alertmanager.example.yml"
    config = yaml.safe_load(config_path.read_text())
    closed = free_port()  # nothing listens there: notifications fail fast, inhibition is unaffected
    for r in config["receivers"]:
        for w in r.get("webhook_configs", []):
            w["url"] = f"http://127.0.0.1:{closed}/"
    labels, severities = rule_labels()
    expected = alerts_of(SCENARIOS, labels, severities)

    with tempfile.TemporaryDirectory(prefix="tenant-exporter-inhibit.") as tmp:
        cfg = pathlib.Path(tmp) / "alertmanager.yml"
        cfg.write_text(yaml.safe_dump(config))
        port = free_port()
        am = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            ["prometheus-alertmanager", f"--config.file={cfg}", f"--storage.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=open(pathlib.Path(tmp) / "am.log", "w"))
        try:
            wait("Alertmanager ready", lambda: request(f"{am}/-/ready"))
            now = datetime.datetime.now(datetime.timezone.utc)
            request(f"{am}/api/v2/alerts", [
                {"labels": lab, "annotations": {}, "startsAt": now.isoformat(),
                 "endsAt": (now + datetime.timedelta(hours=1)).isoformat()}
                for lab, _ in expected])
            wait("the alerts", lambda: len(request(f"{am}/api/v2/alerts?inhibited=true")) >= len(expected))

            # The inhibitor learns of source alerts asynchronously: allow it a few seconds.
            until = time.monotonic() + 10
            failed = problems(am, expected)
            while failed and time.monotonic() < until:
                time.sleep(0.2)
                failed = problems(am, expected)
            for p in failed:
                print(f"FAIL {p}")
            n_inhibited = sum(1 for _, i in expected if i)
            print(f"inhibitions: {len(expected)} alerts in {len(SCENARIOS)} scenarios, {n_inhibited} to be muted: "
                  f"{len(failed)} problems")
            if failed:
                return 1

            # Each inhibit rule removed once must break at least one scenario; the original config
            # reloaded last must pass again.
            def load(cfg_obj):
                cfg.write_text(yaml.safe_dump(cfg_obj))
                request(f"{am}/-/reload", {})
                want = len(cfg_obj["inhibit_rules"])
                wait("the reload", lambda: yaml.safe_load(
                    request(f"{am}/api/v2/status")["config"]["original"]).get("inhibit_rules", []).__len__() == want)
                # The rebuilt inhibitor relearns the source alerts asynchronously: take the
                # answer once three polls in a row agree.
                time.sleep(1)
                last, same = None, 0
                while same < 3:
                    got = problems(am, expected)
                    same = same + 1 if got == last else 1
                    last = got
                    time.sleep(0.3)
                return last

            unguarded = []
            for i, rule in enumerate(config["inhibit_rules"]):
                mutated = copy.deepcopy(config)
                del mutated["inhibit_rules"][i]
                caught = load(mutated)
                what = f"inhibit rule {i + 1} ({rule['source_matchers']} -> {rule['target_matchers']})"
                if caught:
                    print(f"ok   without {what}: {len(caught)} alert(s) wrong, e.g. {caught[0]}")
                else:
                    unguarded.append(what)
                    print(f"FAIL without {what}: every scenario still passes: the rule is not tested")
            again = load(config)
            for p in again:
                print(f"FAIL after reloading the original: {p}")
            if again:
                return 1
            return 1 if unguarded else 0
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
