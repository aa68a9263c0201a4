//! Commvault sources: a session per target (`auth`) and the organizations collector.
//!
//! Commvault answers many failures with HTTP 200 and an error in the body, either
//! `{"errorCode": N, "errorMessage": ...}` or `{"errList": [{"errLogMessage": ...}]}`, so
//! every body is checked with [`api_error`] before it is read.

use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::CommvaultTarget;
use crate::metrics::SelfMetrics;
use crate::sources::lenient::First;
use crate::sources::{lenient, Collect};
use crate::upstream::sanitize;

pub mod auth;
pub mod organizations;

pub const COLLECTOR: &str = "commvault_organizations";

/// The organizations collector for one Commvault target.
pub fn collector(target: &CommvaultTarget, metrics: Arc<SelfMetrics>) -> Arc<dyn Collect> {
    let session = auth::Session::new(
        &target.name,
        &target.base_url,
        &target.username,
        target.password.clone(),
        metrics,
    );
    Arc::new(organizations::Organizations::new(
        target.base_url.clone(),
        target.organizations.clone(),
        target.concurrency,
        session,
    ))
}

/// The error a Commvault body reports, if any: a non-zero `errorCode` or a non-empty
/// `errList`. The message is sanitized; a body that is not an object reports nothing.
pub fn api_error(body: &Value) -> Option<String> {
    let message = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(|m| sanitize(m, 300))
    };
    let code = |v: &Value| lenient::number(v.get("errorCode")?).filter(|c| *c != 0.0);
    if let Some(c) = code(body) {
        return Some(match message(body, "errorMessage") {
            Some(m) => format!("errorCode {c}: {m}"),
            None => format!("errorCode {c}"),
        });
    }
    let first = body.get("errList")?.as_array()?.first()?;
    match (
        message(first, "errLogMessage").or_else(|| message(first, "errorMessage")),
        code(first),
    ) {
        (Some(m), Some(c)) => Some(format!("errorCode {c}: {m}")),
        (Some(m), None) => Some(m),
        (None, Some(c)) => Some(format!("errorCode {c}")),
        (None, None) => None,
    }
}

/// The status fields of a Commvault answer, kept small whatever their size upstream: only
/// the first `errList` entry is read.
#[derive(Default)]
pub(crate) struct StatusFields {
    pub error_code: Option<Value>,
    pub error_message: Option<Value>,
    pub err_list: Option<First<Value>>,
}

impl StatusFields {
    /// Reads `raw` if `key` is a status field; whether it was. An answer with only these
    /// and no `providers` means "no organizations": Commvault leaves out empty lists.
    pub fn capture(&mut self, key: &str, raw: &RawValue) -> bool {
        match key {
            "errorCode" => self.error_code = serde_json::from_str(raw.get()).ok(),
            "errorMessage" => self.error_message = serde_json::from_str(raw.get()).ok(),
            "errList" => self.err_list = serde_json::from_str(raw.get()).ok(),
            _ => return false,
        }
        true
    }

    pub fn api_error(&self) -> Option<String> {
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
}
