//! Commvault sources: a session per target (`auth`) and the organizations collector.
//!
//! Commvault answers many failures with HTTP 200 and an error in the body, in one of several
//! shapes (see `api_error`), so every body is checked before it is read.

use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::metrics::SelfMetrics;
use crate::snapshot::{SampleSet as _, Table};
use crate::sources::families::select;
use crate::sources::lenient::First;
use crate::sources::{lenient, Collect, Job};
use crate::upstream::sanitize;

pub mod auth;
pub(crate) mod config;
pub mod organizations;

use config::CommvaultTarget;

pub(crate) const COLLECTOR: &str = "commvault_organizations";
/// The `credential` label values of this source's self-metrics: the session, and the API
/// access token when one is renewed.
pub(crate) const CREDENTIALS: &[&str] = &[auth::CREDENTIAL, "access_token"];

/// The organizations collector for one Commvault target.
pub(crate) fn collector(target: &CommvaultTarget, metrics: Arc<SelfMetrics>) -> Arc<dyn Collect> {
    let session = auth::Session::new(target, metrics);
    Arc::new(organizations::Organizations::new(
        target.base_url.clone(),
        target.organizations.clone(),
        target.concurrency,
        target.stale_after,
        session,
    ))
}

/// This source's metric families, by collector.
pub(crate) fn families() -> [(&'static str, Table); 1] {
    [(
        COLLECTOR,
        organizations::OrganizationSet::default().families(),
    )]
}

/// A Commvault target's one job; its session is its own.
pub(crate) fn jobs(t: &CommvaultTarget, metrics: &Arc<SelfMetrics>) -> Vec<Job> {
    vec![Job {
        collector: COLLECTOR,
        interval: t.interval,
        tls: t.tls.clone(),
        source: select(collector(t, metrics.clone()), &t.metrics),
        credentials: &[auth::CREDENTIAL],
        credential_kinds: CREDENTIALS,
    }]
}

/// The error a Commvault body reports, if any, in every shape the web service uses:
/// `{"errorCode": N, "errorMessage": ...}`, `{"error": {"errorCode", "errLogMessage",
/// "errorMessage", "errorString"}}`, `{"response": [{"errorCode": N, "errorString": ...}]}` and
/// `{"errList": [{"errLogMessage": ..., "errorCode": N}]}`. A zero `errorCode` is success.
/// The message is sanitized; a body that is not an object reports nothing.
pub(crate) fn api_error(body: &Value) -> Option<String> {
    // Success bodies carry the top-level fields and an empty `errList` too.
    if let Some(e) = describe(body) {
        return Some(e);
    }
    if let Some(e) = body.get("error").filter(|e| e.is_object()) {
        if let Some(e) = describe(e) {
            return Some(e);
        }
    }
    if let Some(first) = body
        .get("response")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
    {
        if let Some(e) = describe(first) {
            return Some(e);
        }
    }
    let first = body.get("errList")?.as_array()?.first()?;
    describe(first).or_else(|| message(first))
}

/// An object's error: a non-zero `errorCode` with its message if any. A message without a
/// code counts only inside an `error` object or an `errList` entry (see [`api_error`]).
fn describe(v: &Value) -> Option<String> {
    let code = v
        .get("errorCode")
        .and_then(lenient::number)
        .filter(|c| *c != 0.0);
    match (code, message(v)) {
        (Some(c), Some(m)) => Some(format!("errorCode {c}: {m}")),
        (Some(c), None) => Some(format!("errorCode {c}")),
        // `{"error": {"errLogMessage": ...}}` without a code still is a refusal.
        (None, Some(m)) if v.get("errorCode").is_none() && v.get("errLogMessage").is_some() => {
            Some(m)
        }
        _ => None,
    }
}

/// The most specific message an error object carries.
fn message(v: &Value) -> Option<String> {
    ["errLogMessage", "errorMessage", "errorString"]
        .iter()
        .filter_map(|k| v.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .find(|m| !m.is_empty())
        .map(|m| sanitize(m, 300))
}

/// The status fields of a Commvault answer, kept small whatever their size upstream: only
/// the first `errList` entry is read.
#[derive(Default)]
pub(crate) struct StatusFields {
    pub(crate) error_code: Option<Value>,
    pub(crate) error_message: Option<Value>,
    pub(crate) err_list: Option<First<Value>>,
    pub(crate) error: Option<Value>,
    pub(crate) response: Option<First<Value>>,
}

impl StatusFields {
    /// Reads `raw` if `key` is a status field; whether it was. An answer with only these
    /// and no `providers` means "no organizations": Commvault leaves out empty lists.
    pub(crate) fn capture(&mut self, key: &str, raw: &RawValue) -> bool {
        match key {
            "errorCode" => self.error_code = serde_json::from_str(raw.get()).ok(),
            "errorMessage" => self.error_message = serde_json::from_str(raw.get()).ok(),
            "errList" => self.err_list = serde_json::from_str(raw.get()).ok(),
            "error" => self.error = serde_json::from_str(raw.get()).ok(),
            "response" => self.response = serde_json::from_str(raw.get()).ok(),
            // cvpysdk strips it before reading: it says nothing about the answer's content.
            "processinginstructioninfo" => {}
            _ => return false,
        }
        true
    }

    pub(crate) fn api_error(&self) -> Option<String> {
        let mut obj = serde_json::Map::new();
        if let Some(v) = &self.error_code {
            obj.insert("errorCode".into(), v.clone());
        }
        if let Some(v) = &self.error_message {
            obj.insert("errorMessage".into(), v.clone());
        }
        if let Some(First(Some(v))) = &self.err_list {
            obj.insert("errList".into(), Value::Array(vec![v.clone()]));
        }
        if let Some(v) = &self.error {
            obj.insert("error".into(), v.clone());
        }
        if let Some(First(Some(v))) = &self.response {
            obj.insert("response".into(), Value::Array(vec![v.clone()]));
        }
        api_error(&Value::Object(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> Option<String> {
        api_error(&serde_json::from_str(body).unwrap())
    }

    #[test]
    fn api_errors_in_bodies() {
        assert_eq!(
            err(r#"{"errorCode": 5, "errorMessage": "Access denied"}"#).as_deref(),
            Some("errorCode 5: Access denied")
        );
        assert_eq!(err(r#"{"errorCode": "2"}"#).as_deref(), Some("errorCode 2"));
        assert_eq!(
            err(r#"{"errList": [{"errLogMessage": "Username/Password are incorrect", "errorCode": 5}]}"#)
                .as_deref(),
            Some("errorCode 5: Username/Password are incorrect")
        );
        assert_eq!(
            err(r#"{"errList": [{"errLogMessage": "bad\nthing"}]}"#).as_deref(),
            Some("bad thing")
        );
        // Success bodies carry these fields too.
        assert_eq!(err(r#"{"errorCode": 0, "errorMessage": ""}"#), None);
        assert_eq!(err(r#"{"errList": [], "token": "QSDK 1"}"#), None);
        assert_eq!(err(r#"{"providers": []}"#), None);
        assert_eq!(err(r#"[1, 2]"#), None);
    }

    #[test]
    fn every_error_shape_names_its_cause() {
        // A refused RenewLoginToken: HTTP 200, an `error` object and no token.
        assert_eq!(
            err(r#"{"error": {"errorCode": 1, "errLogMessage": "Session is not valid"}}"#)
                .as_deref(),
            Some("errorCode 1: Session is not valid")
        );
        assert_eq!(
            err(r#"{"error": {"errLogMessage": "Token renewal failed"}}"#).as_deref(),
            Some("Token renewal failed")
        );
        assert_eq!(
            err(r#"{"error": {"errorCode": 2, "errorString": "Invalid input"}}"#).as_deref(),
            Some("errorCode 2: Invalid input")
        );
        assert_eq!(
            err(r#"{"error": {"errorCode": 5, "errorMessage": "Access denied"}}"#).as_deref(),
            Some("errorCode 5: Access denied")
        );
        assert_eq!(
            err(r#"{"response": [{"errorCode": 9, "errorString": "No permission"}]}"#).as_deref(),
            Some("errorCode 9: No permission")
        );
        assert_eq!(err(r#"{"response": [{"errorCode": 0}]}"#), None);
        assert_eq!(
            err(r#"{"error": {"errorCode": 0, "errorString": ""}}"#),
            None
        );
        assert_eq!(
            err(r#"{"errList": [{"errorCode": 1116}]}"#).as_deref(),
            Some("errorCode 1116")
        );
    }
}
