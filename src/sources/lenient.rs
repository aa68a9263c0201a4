//! Lenient readings of JSON values. Vendors send numbers as strings and flags as 0/1 or
//! "true"; a value that cannot be read is absent rather than an error for the whole payload.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A finite number, as a JSON number or a numeric string.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
}

/// A non-negative integer, as a JSON number or a numeric string.
pub fn unsigned(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A flag: a boolean, a number (non-zero is true), or those spelled as strings
/// ("true", "yes", "on", "1", ...).
pub fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|n| n != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A string, or a number written as one.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `deserialize_with` adapters for optional fields (use with `#[serde(default)]`).
pub mod de {
    use super::*;

    pub fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(super::number(&Value::deserialize(d)?))
    }

    pub fn unsigned<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(super::unsigned(&Value::deserialize(d)?))
    }

    pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(super::boolean(&Value::deserialize(d)?))
    }

    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(super::text(&Value::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn readings() {
        assert_eq!(number(&json!(3)), Some(3.0));
        assert_eq!(number(&json!(" 2.5 ")), Some(2.5));
        assert_eq!(number(&json!("inf")), None);
        assert_eq!(number(&json!(true)), None);
        assert_eq!(unsigned(&json!("16")), Some(16));
        assert_eq!(unsigned(&json!(-1)), None);
        assert_eq!(boolean(&json!(1)), Some(true));
        assert_eq!(boolean(&json!(0)), Some(false));
        assert_eq!(boolean(&json!("True")), Some(true));
        assert_eq!(boolean(&json!("maybe")), None);
        assert_eq!(text(&json!(42)), Some("42".into()));
        assert_eq!(text(&json!(null)), None);
    }
}
