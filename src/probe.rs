//! `--probe`: one live collection per configured target and collector, through the
//! collectors' own code, each outcome said in words a user can act on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::metrics::SelfMetrics;
use crate::scheduler::jobs;
use crate::sources::{webex, CollectError};
use crate::upstream::{Client, Policy, RequestCtx, UpstreamError};

/// A probe waits at least this long for a collection, however short `global.timeout` is, so a
/// large estate is not reported as unreachable.
const MIN_DEADLINE: Duration = Duration::from_secs(30);

/// The outcome for one collector of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub(crate) collector: &'static str,
    pub target: String,
    /// `None` when the collection worked.
    pub problem: Option<String>,
    /// Objects read (enterprises, orgs, customers, organizations).
    pub(crate) objects: usize,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.problem {
            None => write!(
                f,
                "OK    {} {}: {} objects",
                self.collector, self.target, self.objects
            ),
            Some(p) => write!(f, "FAIL  {} {}: {p}", self.collector, self.target),
        }
    }
}

/// Probes every job of `config` at once; the outcomes come in config order.
pub async fn run(config: &Config) -> Vec<Outcome> {
    let metrics = Arc::new(SelfMetrics::new());
    let mut policy = Policy::new(config.global.timeout);
    // One call says whether it works; retries would only delay the answer (and repeated
    // Commvault logins can lock the account).
    policy.max_attempts = 1;
    let client = match Client::new(policy, metrics.clone()) {
        Ok(c) => c,
        Err(e) => {
            return vec![Outcome {
                collector: "exporter",
                target: String::new(),
                problem: Some(format!("cannot build the HTTP client: {e}")),
                objects: 0,
            }]
        }
    };
    let limit = config.global.timeout.max(MIN_DEADLINE);
    let probes = jobs(config, &metrics).into_iter().map(|job| {
        let client = client.clone();
        async move {
            let outcome = |problem: Option<String>, objects| Outcome {
                collector: job.collector,
                target: job.target.clone(),
                problem,
                objects,
            };
            let proxied = job.tls.proxy_url.is_some();
            let client = match client.with_tls(&job.target, &job.tls) {
                Ok(c) => c,
                Err(e) => return outcome(Some(e.to_string()), 0),
            };
            let ctx = RequestCtx {
                collector: job.collector,
                target: job.target.clone(),
                deadline: Instant::now() + limit,
            };
            let result = match tokio::time::timeout(limit, job.source.collect(&client, &ctx)).await
            {
                Ok(r) => r,
                Err(_) => Err(CollectError::Timeout(limit)),
            };
            // Commvault sessions are logged out rather than left to time out.
            let _ =
                tokio::time::timeout(Duration::from_secs(5), job.source.shutdown(&client)).await;
            match result {
                Ok(c) if c.problems.is_empty() => outcome(None, c.samples.objects()),
                Ok(c) => {
                    let text = c.problems.join("; ");
                    let problem = match hint(job.collector, None, &text, proxied) {
                        Some(h) => format!("{h}. Details: {text}"),
                        None => text,
                    };
                    outcome(Some(problem), c.samples.objects())
                }
                Err(e) => outcome(Some(explain(job.collector, &e, proxied)), 0),
            }
        }
    });
    futures_util::future::join_all(probes).await
}

/// The error with, in front, what to do about it when that can be told. `proxied`: the target
/// has a `proxy_url`, so a refused connection is the proxy's.
pub(crate) fn explain(collector: &str, e: &CollectError, proxied: bool) -> String {
    let status = match e {
        CollectError::Upstream(UpstreamError::Status { status, .. }) => Some(*status),
        _ => None,
    };
    let text = e.to_string();
    match hint(collector, status, &text, proxied) {
        Some(h) => format!("{h}. Details: {text}"),
        None => text,
    }
}

/// What an error means for the user, from its status and the words the upstream or the
/// HTTP stack used.
fn hint(collector: &str, status: Option<u16>, text: &str, proxied: bool) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let has = |s: &str| lower.contains(s);
    let is_webex = collector.starts_with("webex_");
    let scope = match collector {
        webex::broadworks::COLLECTOR => "spark-admin:broadworks_enterprises_read",
        _ => "spark-admin:organizations_read",
    };
    let h = if has("access to all customers") || has("partner full admin") {
        "this person is a Partner Full Admin, who has no managed orgs to list; use a partner \
         admin with assigned customers"
            .to_string()
    } else if has("locked") && !is_webex {
        "the account is locked after failed logins; wait for the lock to expire (see details), \
         fix the password, and do not retry meanwhile"
            .to_string()
    } else if has("certificate") || has("unknownissuer") || has("invalid peer") {
        "the server's TLS certificate is not trusted: set ca_file to the CA that signed it".into()
    } else if proxied
        && (has("proxy") || has("tunnel") || has("connection refused") || has("socks"))
    {
        "the proxy refused or failed the connection: check the target's proxy_url and that the \
         proxy allows this host"
            .into()
    } else if has("proxy") || has("tunnel") {
        "the proxy refused or failed the connection: check HTTPS_PROXY/HTTP_PROXY and NO_PROXY"
            .into()
    } else if has("connection refused") {
        "connection refused: check base_url's host and port, and that the service listens there"
            .into()
    } else if has("dns error") || has("failed to lookup") || has("name or service not known") {
        "the host name does not resolve: check base_url".into()
    } else if has("timed out") || has("did not finish within") {
        "no answer in time: check base_url, firewalls and proxies on the way".into()
    } else if status == Some(401) || has("http 401") {
        if is_webex {
            "the access token was refused: it expired or was revoked; get a new one (for an \
             integration: tenant-exporter oauth-login)"
                .into()
        } else {
            "wrong username or password".into()
        }
    } else if has("incorrect") || has("invalid credentials") || has("bad credentials") {
        "wrong username or password".into()
    } else if (status == Some(403) || has("http 403")) && is_webex {
        format!(
            "access denied: the token lacks scope {scope}, or its user is not a partner \
             administrator; re-authorize with that scope"
        )
    } else if (status == Some(403) || has("http 403")) && proxied {
        "access denied, by the account's role or by the proxy on the way (proxy_url); see the \
         README's Getting credentials"
            .into()
    } else if status == Some(403) || has("http 403") {
        "access denied: the account's role may not read this; see the README's Getting \
         credentials"
            .into()
    } else if status == Some(404) || has("http 404") {
        "nothing at that address: check base_url's path".into()
    } else if has("refresh token") {
        "the integration's refresh token does not work: run tenant-exporter oauth-login".into()
    } else {
        return None;
    };
    Some(h)
}

/// `--probe`: prints one line per collector and target; success only when all are OK.
pub async fn main(path: &std::path::Path) -> std::process::ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcomes = run(&config).await;
    for o in &outcomes {
        println!("{o}");
    }
    if outcomes.is_empty() {
        println!("nothing to probe: the config has no targets");
    }
    if outcomes.iter().all(|o| o.problem.is_none()) {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_fix() {
        let h = |collector, status, text: &str, proxied| hint(collector, status, text, proxied);
        let cases: &[(&str, Option<u16>, &str, bool, &str)] = &[
            (
                "commvault_organizations",
                None,
                "logging in failed: account is locked for 28 minutes",
                false,
                "locked",
            ),
            (
                "voss_spark_customers",
                None,
                "GET https://v/: connection failed: dns error: failed to lookup address",
                false,
                "does not resolve",
            ),
            (
                "voss_spark_customers",
                None,
                "GET https://v/: timed out",
                false,
                "no answer in time",
            ),
            (
                "voss_spark_customers",
                None,
                "GET https://v/: connection failed: Connection refused",
                true,
                "proxy refused",
            ),
            (
                "voss_spark_customers",
                None,
                "GET https://v/: connection failed: unsuccessful tunnel",
                false,
                "HTTPS_PROXY",
            ),
            (
                "webex_managed_orgs",
                Some(403),
                "HTTP 403",
                false,
                "spark-admin:organizations_read",
            ),
            (
                "commvault_organizations",
                Some(404),
                "HTTP 404",
                false,
                "base_url's path",
            ),
            (
                "webex_broadworks",
                None,
                "refreshing the access token failed: invalid refresh token",
                false,
                "oauth-login",
            ),
        ];
        for (collector, status, text, proxied, expected) in cases {
            let got = h(collector, *status, text, *proxied).unwrap_or_default();
            assert!(got.contains(expected), "{text:?} -> {got:?}");
        }
        assert_eq!(
            h("voss_spark_customers", None, "resources[0]: no pkid", false),
            None
        );
    }
}
