//! Lenient readings of JSON values. Vendors send numbers as strings and flags as 0/1 or
//! "true"; a value that cannot be read is absent rather than an error for the whole payload.

use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// A finite number, as a JSON number or a numeric string.
pub(crate) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
}

/// A non-negative integer, as a JSON number or a numeric string.
pub(crate) fn unsigned(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A count: a finite, non-negative number. [`Count::Invalid`] when a value is present but is
/// not one, so the caller can skip the sample and say so.
pub(crate) fn count(v: &Value) -> Count {
    match v {
        Value::Null => Count::Absent,
        Value::String(s) if s.trim().is_empty() => Count::Absent,
        _ => match number(v) {
            Some(n) if n >= 0.0 => Count::Valid(n),
            _ => Count::Invalid,
        },
    }
}

/// A flag: a boolean, a number (non-zero is true), or those spelled as strings
/// ("true", "yes", "on", "1", ...).
pub(crate) fn boolean(v: &Value) -> Option<bool> {
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
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A count field as read by [`de::count`]: absent, a valid count, or present but unusable.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) enum Count {
    #[default]
    Absent,
    Valid(f64),
    Invalid,
}

impl Count {
    /// The value, noting an unusable one in `skips` under `field`.
    pub(crate) fn take(
        self,
        skips: &mut Skips,
        who: &dyn fmt::Display,
        field: &str,
    ) -> Option<f64> {
        match self {
            Count::Absent => None,
            Count::Valid(v) => Some(v),
            Count::Invalid => {
                skips.note(|| format!("{who}: {field} is not a non-negative number"));
                None
            }
        }
    }
}

/// Something in a payload that was skipped rather than failing the collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub(crate) what: String,
}

/// How many examples of skipped values are kept for the log.
const SKIP_EXAMPLES: usize = 8;

/// Skipped values of one collection: all are counted, only the first few are described, so a
/// page of a million unreadable items costs a counter rather than a million records.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Skips {
    count: usize,
    examples: Vec<Skipped>,
}

impl Skips {
    /// Counts one skipped value; `what` is only built while examples are still kept.
    pub(crate) fn note(&mut self, what: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < SKIP_EXAMPLES {
            self.examples.push(Skipped { what: what() });
        }
    }

    pub(crate) fn push(&mut self, s: Skipped) {
        self.note(|| s.what);
    }

    /// Every skipped value, described or not.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The described examples, at most a few.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Skipped> {
        self.examples.iter()
    }

    pub(crate) fn first(&self) -> Option<&Skipped> {
        self.examples.first()
    }

    /// One warning per collection for what was skipped, with the first example; nothing
    /// when nothing was.
    pub(crate) fn warn(&self, ctx: &crate::upstream::RequestCtx, what: &str) {
        if let Some(first) = self.first() {
            tracing::warn!(
                collector = ctx.collector,
                target = %ctx.target,
                skipped = self.len(),
                first = %first.what,
                "skipped {what}"
            );
        }
    }
}

impl std::ops::Index<usize> for Skips {
    type Output = Skipped;
    fn index(&self, i: usize) -> &Skipped {
        &self.examples[i]
    }
}

/// What [`visit_list`] saw of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListSeen {
    /// Whether the list key was present (`null` counts as an empty list).
    pub(crate) present: bool,
    /// Elements handed to the callback.
    pub(crate) items: usize,
}

/// Reads a JSON object whose `list_key` holds an array, handing each element to `on_item`
/// as raw text as it is parsed, and every other key's value to `on_other`. Nothing of the
/// list is kept, so the memory a page costs is its body plus what the callbacks keep: an
/// array of ten million unreadable items is ten million callbacks, not ten million records.
/// A callback error stops the parse with that message.
pub(crate) fn visit_list<'de, Stop: fmt::Display>(
    body: &'de [u8],
    list_key: &str,
    on_item: &mut dyn FnMut(usize, &'de RawValue) -> Result<(), Stop>,
    on_other: &mut dyn FnMut(&str, &'de RawValue),
) -> Result<ListSeen, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let seen = de.deserialize_map(ObjectVisitor {
        list_key,
        on_item,
        on_other,
    })?;
    de.end()?;
    Ok(seen)
}

struct ObjectVisitor<'a, 'de, Stop> {
    list_key: &'a str,
    on_item: &'a mut dyn FnMut(usize, &'de RawValue) -> Result<(), Stop>,
    on_other: &'a mut dyn FnMut(&str, &'de RawValue),
}

impl<'de, Stop: fmt::Display> Visitor<'de> for ObjectVisitor<'_, 'de, Stop> {
    type Value = ListSeen;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with a {:?} list", self.list_key)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ListSeen, A::Error> {
        let mut seen = ListSeen {
            present: false,
            items: 0,
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.list_key {
                seen.present = true;
                seen.items += map.next_value_seed(ItemsSeed {
                    list_key: self.list_key,
                    offset: seen.items,
                    on_item: &mut *self.on_item,
                })?;
            } else {
                let raw: &'de RawValue = map.next_value()?;
                (self.on_other)(&key, raw);
            }
        }
        Ok(seen)
    }
}

struct ItemsSeed<'a, 'de, Stop> {
    list_key: &'a str,
    offset: usize,
    on_item: &'a mut dyn FnMut(usize, &'de RawValue) -> Result<(), Stop>,
}

impl<'de, Stop: fmt::Display> DeserializeSeed<'de> for ItemsSeed<'_, 'de, Stop> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, Stop: fmt::Display> Visitor<'de> for ItemsSeed<'_, 'de, Stop> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:?} to be a list", self.list_key)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            (self.on_item)(self.offset + n, raw).map_err(serde::de::Error::custom)?;
            n += 1;
        }
        Ok(n)
    }
}

/// The first element of a list, the rest skipped without being kept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct First<T>(pub(crate) Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for First<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = First<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<First<T>, E> {
                Ok(First(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<First<T>, A::Error> {
                let first = seq.next_element::<T>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(First(first))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// `deserialize_with` adapters for optional fields (use with `#[serde(default)]`).
pub(crate) mod de {
    use super::*;

    /// A nested object or list read on its own: when it cannot be read as `T` it is absent,
    /// and the fields around it are kept.
    pub(crate) fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        Ok(serde_json::from_str::<Option<T>>(raw.get()).ok().flatten())
    }

    pub(crate) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        Ok(super::count(&Value::deserialize(d)?))
    }

    pub(crate) fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(super::number(&Value::deserialize(d)?))
    }

    pub(crate) fn unsigned<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(super::unsigned(&Value::deserialize(d)?))
    }

    pub(crate) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(super::boolean(&Value::deserialize(d)?))
    }

    pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(super::text(&Value::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

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
        assert_eq!(count(&json!(3)), Count::Valid(3.0));
        assert_eq!(count(&json!("4")), Count::Valid(4.0));
        assert_eq!(count(&json!(null)), Count::Absent);
        assert_eq!(count(&json!(-1)), Count::Invalid);
        assert_eq!(count(&json!("NaN")), Count::Invalid);
        assert_eq!(count(&json!("inf")), Count::Invalid);
        assert_eq!(count(&json!([])), Count::Invalid);
    }

    #[test]
    fn lists_are_visited_without_being_kept() {
        let mut items = Vec::new();
        let mut other = Vec::new();
        let seen = visit_list(
            br#"{"a": {"x": [1]}, "items": [1, {"b": 2}, "c"], "z": null}"#,
            "items",
            &mut |i, raw| {
                items.push((i, raw.get().to_string()));
                Ok::<_, Infallible>(())
            },
            &mut |k, raw| other.push((k.to_string(), raw.get().to_string())),
        )
        .unwrap();
        assert_eq!(
            seen,
            ListSeen {
                present: true,
                items: 3
            }
        );
        assert_eq!(items[1], (1, r#"{"b": 2}"#.to_string()));
        assert_eq!(other.len(), 2);
        let stop = visit_list(
            b"{\"items\":[1,2,3]}",
            "items",
            &mut |i, _| {
                if i == 1 {
                    Err("too many")
                } else {
                    Ok(())
                }
            },
            &mut |_, _| {},
        );
        assert!(stop.unwrap_err().to_string().contains("too many"));
        for bad in [&b"[1]"[..], b"{\"items\": 3}", b"{\"items\": [1", b"{} x"] {
            let ok = &mut |_, _: &RawValue| Ok::<_, Infallible>(());
            assert!(visit_list(bad, "items", ok, &mut |_, _| {}).is_err());
        }
        let absent = visit_list(
            b"{\"items\": null}",
            "items",
            &mut |_, _| Ok::<_, Infallible>(()),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(
            absent,
            ListSeen {
                present: true,
                items: 0
            }
        );
    }

    #[test]
    fn skips_count_everything_and_describe_a_few() {
        let mut s = Skips::default();
        for i in 0..1000 {
            s.note(|| format!("item {i}"));
        }
        assert_eq!(s.len(), 1000);
        assert_eq!(s.iter().count(), SKIP_EXAMPLES);
        assert_eq!(s[0].what, "item 0");
    }
}
