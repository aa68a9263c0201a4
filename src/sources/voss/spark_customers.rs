//! VOSS Automate SparkCustomer connections and the expiry of their Webex tokens (collector
//! `voss_spark_customers`).
//!
//! `GET {base}/api/relation/SparkCustomer/?hierarchy=..&format=json&skip=N&limit=M` with HTTP
//! Basic auth, paged by `pagination.total`. Customers are keyed by `resources[].pkid`, which
//! can differ from `data.pkid`.
//!
//! The payload carries each customer's Webex `token` and `refresh_token`. The payload types
//! below deliberately do not declare them, so they are never copied out of the response
//! body, and item errors never quote payload text.

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use futures_util::future::BoxFuture;
use prometheus_client::encoding::MetricEncoder;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use url::Url;

use super::COLLECTOR;
use crate::config::Secret;
use crate::snapshot::{gauge, FamilyOf, Samples};
pub(crate) use crate::sources::lenient::{Skipped, Skips};
use crate::sources::voss::config::VossTarget;
use crate::sources::{
    help, lenient, parse_timestamp, Collect, CollectError, Collected, Objects, PayloadError,
};
use crate::upstream::{display_url, sanitize, Client, Request, RequestCtx, UpstreamError};

const LIST_PATH: &str = "api/relation/SparkCustomer/";

static FAMILIES: [FamilyOf<SparkCustomerSet>; 5] = [
    FamilyOf {
        name: "voss_spark_customer_info",
        help: help!(
            "VOSS Automate",
            "A SparkCustomer (Webex customer connection) with its identifiers, value 1."
        ),
        encode: |s, target, enc| {
            for c in &s.customers {
                let labels = [
                    ("target", target),
                    ("hierarchy", &*c.hierarchy),
                    ("customer_name", &c.name),
                    ("pkid", &c.pkid),
                    ("account_number", &c.account_number),
                ];
                gauge(enc, &labels, 1.0)?;
            }
            Ok(())
        },
    },
    FamilyOf {
        name: "voss_spark_customers",
        help: help!(
            "VOSS Automate",
            "SparkCustomers at and below the configured hierarchy."
        ),
        encode: |s, target, enc| gauge(enc, &[("target", target)], s.customers.len() as f64),
    },
    FamilyOf {
        name: "voss_spark_customer_access_token_expiry_timestamp_seconds",
        help: help!(
            "VOSS Automate",
            "Unix time the customer's Webex access token expires."
        ),
        encode: |s, target, enc| s.each(target, enc, |c| c.access_token_expiry),
    },
    FamilyOf {
        name: "voss_spark_customer_refresh_token_expiry_timestamp_seconds",
        help: help!(
            "VOSS Automate",
            "Unix time the customer's Webex refresh token expires."
        ),
        encode: |s, target, enc| s.each(target, enc, |c| c.refresh_token_expiry),
    },
    FamilyOf {
        name: "voss_spark_customer_dirsync_enabled",
        help: help!(
            "VOSS Automate",
            "Whether directory synchronization is enabled for the customer (1) or not (0)."
        ),
        encode: |s, target, enc| {
            s.each(target, enc, |c| {
                c.dirsync_enabled.map(|b| if b { 1.0 } else { 0.0 })
            })
        },
    },
];

/// One SparkCustomer, reduced to what the metrics need. Holds no secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// `resources[].pkid`.
    pub(crate) pkid: Box<str>,
    /// `data.hierarchy_path`, dotted.
    pub(crate) hierarchy: Box<str>,
    /// `data.name`.
    pub(crate) name: Box<str>,
    pub(crate) account_number: Box<str>,
    pub(crate) access_token_expiry: Option<f64>,
    pub(crate) refresh_token_expiry: Option<f64>,
    pub(crate) dirsync_enabled: Option<bool>,
}

/// What one page said about paging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageInfo {
    /// Resources on the page, readable or not: what `skip` advances by.
    pub(crate) received: usize,
    /// `pagination.total`.
    pub(crate) total: Option<u64>,
    /// `pagination.limit`, the page size the server applied.
    pub(crate) limit: Option<u64>,
}

#[derive(Deserialize)]
struct RawPagination {
    #[serde(default, deserialize_with = "lenient::de::unsigned")]
    total: Option<u64>,
    #[serde(default, deserialize_with = "lenient::de::unsigned")]
    limit: Option<u64>,
}

#[derive(Deserialize)]
struct RawResource {
    pkid: Option<Value>,
    data: Option<RawData>,
}

/// The fields read from `data`. `token`, `refresh_token` and the other secrets are left
/// out on purpose: serde skips them without copying them anywhere.
#[derive(Deserialize)]
struct RawData {
    name: Option<Value>,
    hierarchy_path: Option<Value>,
    account_number: Option<Value>,
    access_token_expires: Option<Value>,
    refresh_token_expires: Option<Value>,
    dirsync_enabled: Option<Value>,
}

/// Describes a serde error without quoting the payload: data errors (a wrong type) would
/// otherwise repeat the offending value, and a payload holds secrets.
fn describe(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => format!(
            "not a VOSS list response ({{\"pagination\": {{..}}, \"resources\": [..]}}) at line {} column {}",
            e.line(),
            e.column()
        ),
        _ => e.to_string(),
    }
}

/// Parses one page of the list. A resource that cannot be read is skipped and counted; a
/// page that is not `{"resources": [...], ...}`, a page whose resources are all unreadable,
/// and a page that takes the collection past its object limit are errors.
pub fn parse_page(
    body: &[u8],
    out: &mut Vec<Customer>,
    skipped: &mut Skips,
    objects: &mut Objects,
) -> Result<PageInfo, PayloadError> {
    let before = out.len();
    let mut pagination: Option<&RawValue> = None;
    let mut stop = None;
    let seen = lenient::visit_list(
        body,
        "resources",
        &mut |i, raw: &RawValue| {
            if let Err(e) = objects.take() {
                stop = Some(e);
                return Err(String::new());
            }
            match serde_json::from_str::<RawResource>(raw.get()) {
                Ok(r) => {
                    if let Some(c) = convert(i, r, skipped) {
                        out.push(c);
                    }
                }
                Err(_) => skipped.note(|| format!("resources[{i}]: not a SparkCustomer instance")),
            }
            Ok(())
        },
        &mut |key, raw| {
            if key == "pagination" {
                pagination = Some(raw);
            }
        },
    );
    if let Some(e) = stop {
        return Err(e);
    }
    let seen = seen.map_err(|e| describe(&e))?;
    if !seen.present {
        return Err(describe_missing().into());
    }
    let (total, limit) = match pagination.map(|p| p.get().trim()) {
        None | Some("null") => (None, None),
        Some(p) => match serde_json::from_str::<RawPagination>(p) {
            Ok(p) => (p.total, p.limit),
            Err(_) => return Err("pagination is not an object".into()),
        },
    };
    if seen.items > 0 && out.len() == before {
        return Err(PayloadError::Unreadable(format!(
            "none of the {} resources on the page could be read{}",
            seen.items,
            skipped
                .first()
                .map(|s| format!(" (first: {})", s.what))
                .unwrap_or_default()
        )));
    }
    Ok(PageInfo {
        received: seen.items,
        total,
        limit,
    })
}

fn describe_missing() -> String {
    "not a VOSS list response ({\"pagination\": {..}, \"resources\": [..]}): no resources".into()
}

fn convert(i: usize, raw: RawResource, skipped: &mut Skips) -> Option<Customer> {
    let Some(pkid) = raw
        .pkid
        .as_ref()
        .and_then(lenient::text)
        .filter(|p| !p.trim().is_empty())
    else {
        skipped.push(Skipped {
            what: format!("resources[{i}]: no pkid"),
        });
        return None;
    };
    let shown_pkid = sanitize(&pkid, 64);
    let Some(data) = raw.data else {
        skipped.push(Skipped {
            what: format!("resources[{i}] (pkid {shown_pkid}): no data"),
        });
        return None;
    };
    let Some(name) = data
        .name
        .as_ref()
        .and_then(lenient::text)
        .filter(|n| !n.trim().is_empty())
    else {
        skipped.push(Skipped {
            what: format!("resources[{i}] (pkid {shown_pkid}): no name"),
        });
        return None;
    };
    let who = format!("customer {:?} (pkid {shown_pkid})", sanitize(&name, 64));
    let mut report = |field: &str, problem: String| {
        skipped.push(Skipped {
            what: format!("{who}: {field} {problem}"),
        });
    };
    let mut time = |field: &str, v: Option<Value>| -> Option<f64> {
        match v? {
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => {
                let t = parse_timestamp(&s);
                if t.is_none() {
                    report(
                        field,
                        format!("{:?} is not an RFC 3339 timestamp", sanitize(&s, 64)),
                    );
                }
                t
            }
            other => {
                report(field, format!("is a {}, not a timestamp", kind(&other)));
                None
            }
        }
    };
    let access_token_expiry = time("access_token_expires", data.access_token_expires);
    let refresh_token_expiry = time("refresh_token_expires", data.refresh_token_expires);
    let dirsync_enabled = match data.dirsync_enabled {
        None => None,
        Some(v) => {
            let b = lenient::boolean(&v);
            if b.is_none() && !is_blank(&v) {
                let shown = match &v {
                    Value::String(s) => format!("{:?}", sanitize(s, 32)),
                    other => format!("a {}", kind(other)),
                };
                report("dirsync_enabled", format!("{shown} is not a boolean"));
            }
            b
        }
    };
    Some(Customer {
        pkid: pkid.into(),
        hierarchy: data
            .hierarchy_path
            .as_ref()
            .and_then(lenient::text)
            .unwrap_or_default()
            .into(),
        name: name.into(),
        account_number: data
            .account_number
            .as_ref()
            .and_then(lenient::text)
            .unwrap_or_default()
            .into(),
        access_token_expiry,
        refresh_token_expiry,
        dirsync_enabled,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// The customers of one collection, ready to encode.
#[derive(Debug, Default)]
pub(crate) struct SparkCustomerSet {
    /// Sorted by hierarchy, name; at most one per (hierarchy, name).
    pub(crate) customers: Vec<Customer>,
}

impl SparkCustomerSet {
    /// Builds the set from parsed customers. A pkid seen twice (pages that overlap while the
    /// list changes) is kept once. Two customers with the same hierarchy and name would give
    /// the same series: the one with the lowest pkid is kept, whatever the upstream order,
    /// and the other is reported.
    pub(crate) fn new(mut items: Vec<Customer>, skipped: &mut Skips) -> SparkCustomerSet {
        let mut seen: HashSet<Box<str>> = HashSet::with_capacity(items.len());
        items.retain(|c| seen.insert(c.pkid.clone()));
        items.sort_by(|a, b| {
            (&a.hierarchy, &a.name, &a.pkid).cmp(&(&b.hierarchy, &b.name, &b.pkid))
        });
        items.dedup_by(|later, kept| {
            let same = later.hierarchy == kept.hierarchy && later.name == kept.name;
            if same {
                skipped.push(Skipped {
                    what: format!(
                        "customer {:?} at {:?}: pkid {} has the same hierarchy and name as pkid {}, which is exposed instead",
                        sanitize(&later.name, 64),
                        sanitize(&later.hierarchy, 128),
                        sanitize(&later.pkid, 64),
                        sanitize(&kept.pkid, 64)
                    ),
                });
            }
            same
        });
        items.shrink_to_fit();
        SparkCustomerSet { customers: items }
    }
}

impl Samples for SparkCustomerSet {
    const FAMILIES: &'static [FamilyOf<Self>] = &FAMILIES;

    fn count(&self) -> usize {
        self.customers.len()
    }
}

impl SparkCustomerSet {
    /// One gauge per customer with a value.
    fn each(
        &self,
        target: &str,
        enc: &mut MetricEncoder<'_>,
        value: fn(&Customer) -> Option<f64>,
    ) -> fmt::Result {
        for c in &self.customers {
            if let Some(v) = value(c) {
                let key = [
                    ("target", target),
                    ("hierarchy", &*c.hierarchy),
                    ("customer_name", &c.name),
                ];
                gauge(enc, &key, v)?;
            }
        }
        Ok(())
    }
}

/// Where the page after the one read at `skip` starts, or `None` when that was the last:
/// paging goes on until `pagination.total` resources have been received. Without a total,
/// a short page is the last one.
pub(crate) fn next_skip(
    skip: u64,
    page: PageInfo,
    page_size: u32,
) -> Result<Option<u64>, PayloadError> {
    let next = skip + page.received as u64;
    match page.total {
        Some(total) if next >= total => Ok(None),
        Some(total) if page.received == 0 => Err(PayloadError::Unreadable(format!(
            "the page at skip {skip} is empty although pagination.total is {total}"
        ))),
        Some(_) => Ok(Some(next)),
        None => {
            let limit = page.limit.unwrap_or(u64::from(page_size));
            if page.received == 0 || (page.received as u64) < limit {
                Ok(None)
            } else {
                Ok(Some(next))
            }
        }
    }
}

/// Polls one VOSS target's SparkCustomers.
pub(crate) struct SparkCustomers {
    target: String,
    list_url: Url,
    username: String,
    /// `Basic base64(username:password)`, marked sensitive.
    authorization: HeaderValue,
    hierarchy: String,
    page_size: u32,
}

impl fmt::Debug for SparkCustomers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SparkCustomers")
            .field("target", &self.target)
            .field("list_url", &display_url(&self.list_url))
            .field("username", &self.username)
            .field("hierarchy", &self.hierarchy)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

/// The `Authorization` value for HTTP Basic auth (RFC 7617, UTF-8), marked sensitive so
/// it is left out of `Debug` output and HPACK tables.
pub(crate) fn basic_authorization(username: &str, password: &Secret) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(format!("{username}:{}", password.expose()));
    let mut v = HeaderValue::from_str(&format!("Basic {encoded}"))
        .expect("base64 text is a valid header value");
    v.set_sensitive(true);
    v
}

impl SparkCustomers {
    pub(crate) fn new(t: &VossTarget) -> Self {
        let mut list_url = t.base_url.clone();
        let path = format!("{}/{LIST_PATH}", t.base_url.path().trim_end_matches('/'));
        list_url.set_path(&path);
        list_url.set_query(None);
        list_url.set_fragment(None);
        SparkCustomers {
            target: t.name.clone(),
            list_url,
            username: t.username.clone(),
            authorization: basic_authorization(&t.username, &t.password),
            hierarchy: t.hierarchy.clone(),
            page_size: t.page_size.max(1),
        }
    }

    pub(crate) fn page_url(&self, skip: u64) -> Url {
        let mut url = self.list_url.clone();
        url.query_pairs_mut()
            .append_pair("hierarchy", &self.hierarchy)
            .append_pair("format", "json")
            .append_pair("skip", &skip.to_string())
            .append_pair("limit", &self.page_size.to_string());
        url
    }

    fn request<'a>(&self, url: Url) -> Request<'a> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(AUTHORIZATION, self.authorization.clone());
        Request {
            method: reqwest::Method::GET,
            url,
            headers,
            body: None,
            tracking_header: None,
        }
    }

    /// Says plainly what a 401 or 403 means; other errors pass through.
    pub(crate) fn upstream_error(&self, e: UpstreamError) -> CollectError {
        let UpstreamError::Status {
            status: status @ (401 | 403),
            url,
            message,
            ..
        } = &e
        else {
            return e.into();
        };
        let detail = message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let user = sanitize(&self.username, 64);
        let target = sanitize(&self.target, 64);
        CollectError::Credential(if *status == 401 {
            format!(
                "target {target:?}: VOSS rejected the credentials of user {user:?} \
                 (HTTP 401 from {url}{detail}); check username and password"
            )
        } else {
            format!(
                "target {target:?}: VOSS denied user {user:?} access to the SparkCustomers of \
                 hierarchy {:?} (HTTP 403 from {url}{detail}); check the user's role and hierarchy",
                sanitize(&self.hierarchy, 128)
            )
        })
    }

    async fn fetch(&self, client: &Client, ctx: &RequestCtx) -> Result<Collected, CollectError> {
        if self.username.contains(':') {
            return Err(CollectError::Credential(format!(
                "target {:?}: a VOSS username cannot contain ':' with HTTP Basic auth",
                sanitize(&self.target, 64)
            )));
        }
        let max_pages = client.policy().max_pages;
        let mut acc = Acc {
            items: Vec::new(),
            skipped: Skips::default(),
            objects: Objects::new(client.policy().max_objects),
        };
        let mut skip: u64 = 0;
        for _ in 0..max_pages {
            let url = self.page_url(skip);
            let resp = client
                .send(ctx, self.request(url))
                .await
                .map_err(|e| self.upstream_error(e))?;
            let shown = display_url(&resp.url);
            let (back, page) = resp
                .parse(move |resp| {
                    let mut acc = acc;
                    let page = parse_page(
                        &resp.body,
                        &mut acc.items,
                        &mut acc.skipped,
                        &mut acc.objects,
                    );
                    (acc, page)
                })
                .await?;
            acc = back;
            let page = page.map_err(|e| {
                CollectError::Payload(format!(
                    "{shown} (skip {skip}): invalid SparkCustomer list: {e}"
                ))
            })?;
            tracing::debug!(
                collector = COLLECTOR,
                target = %ctx.target,
                skip,
                received = page.received,
                total = page.total.map(|t| t.to_string()).unwrap_or_else(|| "unknown".into()),
                "read a SparkCustomer page"
            );
            let Some(next) = next_skip(skip, page, self.page_size)
                .map_err(|e| CollectError::Payload(format!("{shown}: {e}")))?
            else {
                let Acc {
                    items, mut skipped, ..
                } = acc;
                let set = SparkCustomerSet::new(items, &mut skipped);
                skipped.warn(
                    ctx,
                    "unreadable or duplicate values in the SparkCustomer list",
                );
                return Ok(Collected::complete(std::sync::Arc::new(set)));
            };
            skip = next;
        }
        Err(CollectError::Payload(format!(
            "more than {max_pages} pages of SparkCustomers (limits.max_pages)"
        )))
    }
}

/// What a collection has read so far, moved to the parsing thread and back with each page.
struct Acc {
    items: Vec<Customer>,
    skipped: Skips,
    objects: Objects,
}

impl Collect for SparkCustomers {
    fn collect<'a>(
        &'a self,
        client: &'a Client,
        ctx: &'a RequestCtx,
    ) -> BoxFuture<'a, Result<Collected, CollectError>> {
        Box::pin(self.fetch(client, ctx))
    }
}

#[cfg(test)]
mod tests;
