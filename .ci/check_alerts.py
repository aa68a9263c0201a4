#!/usr/bin/env python3
"""Checks the alerts of the e2e test (python3 stdlib only).

Waits (up to DEADLINE seconds) until every alert the demo's data must trigger has reached the
webhook through Alertmanager, with exact labels, annotations and the receiver the example
routing picks for its severity; then watches a few more seconds and fails on any alert, in
Prometheus (pending or firing) or at the webhook, that is not expected.

BroadWorks expectations are fixed by the demo's data: Reseller3+tenant-00002 and
Reseller2+tenant-00022 fail every sync with error 6003, last success three days before the
demo started: TenantExporterBroadworksDirectorySyncNoRecentSuccess reaches the webhook, and
the example inhibits their ...SyncFailed (active in Alertmanager, muted);
Reseller1+tenant-00012 completes with errors; Reseller1+tenant-00007 is NOT_SYNCED with sync
disabled. VOSS expectations are computed from the token expiry series in Prometheus.

Alerts carry no `instance` (their identity survives a pod rename). The example routes a
critical alert to noc-pager and to its team's queue, warning and info to the team's queue.

    check_alerts.py PROMETHEUS_URL ALERTMANAGER_URL WEBHOOK_FILE [DEADLINE]
"""

import json
import re
import sys
import time
import urllib.parse
import urllib.request

RUNBOOK = "https://git.example.com/noc/tenant-exporter/blob/main/alerts/runbook.md#"
TEAM_RECEIVER = {"noc": "noc-tickets", "broadworks": "broadworks-tickets", "voss": "voss-tickets", "backup": "backup-tickets"}


def receivers(severity, team):
    return {"noc-pager", TEAM_RECEIVER[team]} if severity == "critical" else {TEAM_RECEIVER[team]}
QUIET_SECONDS = 6  # keep watching after the expected alerts arrived: `for:` is 3 s in the e2e
BORDER = 300  # tokens this close to a threshold may be on either side of it: not asserted
DAY = 86400


def get(url, path, params=None):
    q = "?" + urllib.parse.urlencode(params) if params else ""
    with urllib.request.urlopen(url.rstrip("/") + path + q, timeout=10) as r:
        return json.load(r)


def query(prom, expr):
    body = get(prom, "/api/v1/query", {"query": expr})
    return body["data"]["result"]


def key(alertname, labels):
    return (alertname, tuple(sorted((k, v) for k, v in labels.items() if k not in ("alertname", "severity", "team", "scope"))))


class Expect:
    """One alert that must reach the webhook: exact labels, summary and runbook, and a
    description matching `description` (a regular expression, anchored)."""

    def __init__(self, alertname, severity, labels, summary, description, team, scope="tenant"):
        self.alertname, self.severity, self.team = alertname, severity, team
        self.labels = dict(labels, alertname=alertname, severity=severity, team=team, scope=scope)
        self.summary, self.description = summary, description
        self.runbook = RUNBOOK + alertname.lower()

    def problems(self, alert, got_receivers):
        out = []
        if alert["labels"] != self.labels:
            out.append(f"labels {alert['labels']} != {self.labels}")
        a = alert.get("annotations", {})
        if a.get("summary") != self.summary:
            out.append(f"summary {a.get('summary')!r} != {self.summary!r}")
        if not re.fullmatch(self.description, a.get("description", "")):
            out.append(f"description {a.get('description')!r} does not match {self.description!r}")
        if a.get("runbook_url") != self.runbook:
            out.append(f"runbook_url {a.get('runbook_url')!r} != {self.runbook!r}")
        if set(a) != {"summary", "description", "runbook_url"}:
            out.append(f"annotations {sorted(a)}")
        want = receivers(self.severity, self.team)
        if got_receivers != want:
            out.append(f"delivered to {sorted(got_receivers)}, the example routes {self.severity} of team {self.team} to {sorted(want)}")
        return out


def broadworks():
    """(must reach the webhook, allowed, must be active and inhibited in Alertmanager)"""
    base = {"job": "tenant-exporter", "target": "demo"}
    must, allowed, inhibited = [], set(), []
    for sp in ("Reseller3+tenant-00002", "Reseller2+tenant-00022"):
        labels = dict(base, sp_enterprise_id=sp)
        esc = re.escape(sp)
        must.append(Expect(
            "TenantExporterBroadworksDirectorySyncNoRecentSuccess", "critical", labels,
            "A BroadWorks enterprise has had no successful directory sync for a day.",
            rf"Directory sync of BroadWorks enterprise {esc} \(target demo\) is enabled but last succeeded "
            rf"3d \d+h \d+m \d+s ago; error 6003 Failure connecting to the BroadWorks cluster\. "
            rf"\(tracking id BROADWORKS_SIM_\w+\): changes in BroadWorks are not reaching Webex\.", "broadworks"))
        inhibited.append(key("TenantExporterBroadworksDirectorySyncFailed", labels))
    # Completes with errors: a failed sync or reported errors, depending on whether the
    # simulator's sync reports a success time; fires once a finished sync has been seen.
    for name in ("TenantExporterBroadworksDirectorySyncErrors", "TenantExporterBroadworksDirectorySyncFailed"):
        allowed.add(key(name, dict(base, sp_enterprise_id="Reseller1+tenant-00012")))
    return must, allowed, inhibited


def voss(prom):
    """Expected VOSS alerts from the token expiry series; (must, allowed, problems)."""
    must, allowed, problems = [], set(), []
    kinds = [
        ("access", "voss_spark_customer_access_token_expiry_timestamp_seconds"),
        ("refresh", "voss_spark_customer_refresh_token_expiry_timestamp_seconds"),
    ]
    expired_access = 0
    for kind, metric in kinds:
        for r in query(prom, f"{metric} - time()"):
            m = r["metric"]
            left = float(r["value"][1])
            labels = {k: m[k] for k in ("job", "target", "hierarchy", "customer_name")}
            who = (rf"customer {re.escape(m['customer_name'])} \({re.escape(m['hierarchy'])}(, pkid [^)]+)?\) "
                   rf"on VOSS target {re.escape(m['target'])}")
            rules = []  # (alertname, severity, is_due, summary, description)
            if kind == "access":
                rules.append(("TenantExporterVossAccessTokenExpired", "critical", -30 * DAY < left <= 0, 0,
                              "A VOSS SparkCustomer's Webex access token has expired.",
                              rf"The Webex access token of {who} expired .+ ago: VOSS cannot manage that customer's "
                              rf"Webex organization until the token is refreshed\."))
                rules.append(("TenantExporterVossAccessTokenExpiring", "warning", 0 < left < 2 * DAY, 2 * DAY,
                              "A VOSS SparkCustomer's Webex access token expires soon.",
                              rf"The Webex access token of {who} expires in .+ and VOSS has not refreshed it yet\."))
                expired_access += left <= 0
            else:
                rules.append(("TenantExporterVossRefreshTokenExpired", "critical", -30 * DAY < left <= 0, 0,
                              "A VOSS SparkCustomer's Webex refresh token has expired.",
                              rf"The Webex refresh token of {who} expired .+ ago: the customer must authorize VOSS "
                              rf"again before VOSS can manage their Webex organization\."))
                for sev, days in (("warning", 14), ("critical", 3)):
                    rules.append(("TenantExporterVossRefreshTokenExpiring", sev, 0 < left < days * DAY, days * DAY,
                                  "A VOSS SparkCustomer's Webex refresh token expires within "
                                  + ("weeks." if sev == "warning" else "days."),
                                  rf"The Webex refresh token of {who} expires in .+; after that the customer must "
                                  rf"authorize VOSS again\."))
            for alertname, sev, due, threshold, summary, desc in rules:
                near = abs(left - threshold) < BORDER or (threshold and abs(left) < BORDER)
                # Within 3 days the critical fires and the example inhibits the warning:
                # check_inhibition() requires it muted in Alertmanager instead.
                muted = (kind == "refresh" and sev == "warning" and 0 < left < 3 * DAY)
                if near or muted:
                    allowed.add(key(alertname, labels) + (sev,))
                elif due:
                    must.append(Expect(alertname, sev, labels, summary, desc, "voss"))
    if expired_access != 1:
        problems.append(f"the VOSS demo should have exactly one expired access token, Prometheus shows {expired_access}")
    return must, allowed, problems


def main(argv):
    prom, am, webhook_file = argv[1:4]
    deadline = time.monotonic() + (float(argv[4]) if len(argv) > 4 else 90)
    problems = []

    must, allowed, inhibited_keys = broadworks()
    m, a, p = voss(prom)
    if not m:
        problems.append("no VOSS token alert expected: the demo's voss_* series are missing")
    must += m
    allowed |= a
    problems += p
    print(f"voss: expecting {len(m)} alerts from the token expiry series")

    def received():
        out = []
        try:
            with open(webhook_file, encoding="utf-8") as f:
                for line in f:
                    p = json.loads(line)
                    for a in p.get("alerts", []):
                        out.append((a, p.get("receiver")))
        except FileNotFoundError:
            pass
        return out

    # 1. Every expected alert reaches the webhook.
    seen = {}
    while True:
        for a, receiver in received():
            k = key(a["labels"]["alertname"], a["labels"]) + (a["labels"].get("severity"),)
            seen.setdefault(k, (a, set()))[1].add(receiver)
        missing = [e for e in must if key(e.alertname, e.labels) + (e.severity,) not in seen]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    for e in missing:
        problems.append(f"never reached the webhook: {e.alertname} {e.severity} {e.labels}")
    for e in must:
        got = seen.get(key(e.alertname, e.labels) + (e.severity,))
        if got:
            for p in e.problems(*got):
                problems.append(f"{e.alertname} {e.labels.get('sp_enterprise_id') or e.labels.get('customer_name')}: {p}")
            if not e.problems(*got):
                print(f"ok   {e.alertname} ({e.severity}) for {e.labels.get('sp_enterprise_id') or e.labels.get('customer_name')} "
                      f"reached {sorted(got[1])}: {got[0]['annotations']['description']}")

    # 2. Nothing else fires, in Prometheus or at the webhook.
    time.sleep(QUIET_SECONDS)
    expected = {key(e.alertname, e.labels) + (e.severity,) for e in must}

    def unexpected(alertname, labels, state):
        k = key(alertname, labels)
        sev = labels.get("severity")
        if k + (sev,) in expected or k + (sev,) in allowed or k in allowed or k in inhibited_keys:
            return None
        return f"unexpected alert ({state}): {alertname} {sev} {dict(labels)}"

    for a in get(prom, "/api/v1/alerts")["data"]["alerts"]:
        u = unexpected(a["labels"]["alertname"], a["labels"], "Prometheus " + a["state"])
        if u:
            problems.append(u)
    for a, receiver in received():
        u = unexpected(a["labels"]["alertname"], a["labels"], f"webhook {a['status']} via {receiver}")
        if u and u not in problems:
            problems.append(u)

    # 3. The example's inhibition: a critical refresh-token alert mutes the warning of the
    # same customer, which stays active in Alertmanager, inhibited.
    crit = {key(e.alertname, e.labels) for e in must
            if e.alertname == "TenantExporterVossRefreshTokenExpiring" and e.severity == "critical"}
    inhibited = set()
    for a in get(am, "/api/v2/alerts", {"active": "true", "inhibited": "true", "silenced": "true"}):
        k = key(a["labels"]["alertname"], a["labels"])
        if k in crit and a["labels"].get("severity") == "warning" and a["status"].get("inhibitedBy"):
            inhibited.add(k)
    for k in sorted(crit):
        who = dict(k[1]).get("customer_name")
        if k in inhibited:
            print(f"ok   refresh-token warning of {who} is active in Alertmanager, inhibited by its critical")
        else:
            problems.append(f"the refresh-token warning of {who} is not active and inhibited in Alertmanager")
    for a, receiver in received():
        k = key(a["labels"]["alertname"], a["labels"])
        if k in crit and a["labels"].get("severity") == "warning":
            problems.append(f"the inhibited refresh-token warning of {dict(k[1]).get('customer_name')} reached {receiver}")

    # NoRecentSuccess mutes the failed-sync warning of the same enterprise: active, inhibited,
    # never delivered.
    muted = {key(a["labels"]["alertname"], a["labels"])
             for a in get(am, "/api/v2/alerts", {"active": "true", "inhibited": "true", "silenced": "true"})
             if a["status"].get("inhibitedBy")}
    for k in inhibited_keys:
        who = dict(k[1]).get("sp_enterprise_id")
        if k in muted:
            print(f"ok   {k[0]} of {who} is active in Alertmanager, inhibited by ...NoRecentSuccess")
        else:
            problems.append(f"{k[0]} of {who} is not active and inhibited in Alertmanager")
    for a, receiver in received():
        if key(a["labels"]["alertname"], a["labels"]) in inhibited_keys:
            problems.append(f"the inhibited {a['labels']['alertname']} of {a['labels'].get('sp_enterprise_id')} reached {receiver}")

    for p in problems:
        print(f"FAIL {p}")
    print(f"alerts: {len(must) - len([p for p in problems if p.startswith('never')])} expected alerts delivered, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
