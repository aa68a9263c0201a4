//! Cisco Webex sources.

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use url::Url;

use crate::config::Secret;

pub mod broadworks;

/// How requests to one Webex target authenticate. A static bearer token for now.
#[derive(Debug, Clone)]
pub struct WebexAuth {
    token: Secret,
}

impl WebexAuth {
    pub fn bearer(token: Secret) -> Self {
        WebexAuth { token }
    }

    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", self.token.expose())) {
            v.set_sensitive(true);
            h.insert(AUTHORIZATION, v);
        }
        h
    }
}

/// `base` joined with `path`, whether or not `base` ends in a slash.
pub fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url.set_query(None);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keeps_the_base_path() {
        let base = Url::parse("https://webexapis.com/v1").unwrap();
        assert_eq!(
            endpoint(&base, "broadworks/enterprises").as_str(),
            "https://webexapis.com/v1/broadworks/enterprises"
        );
        let base = Url::parse("http://127.0.0.1:8080/v1/").unwrap();
        assert_eq!(
            endpoint(&base, "broadworks/enterprises").as_str(),
            "http://127.0.0.1:8080/v1/broadworks/enterprises"
        );
    }

    #[test]
    fn auth_header_is_sensitive_and_not_in_debug() {
        let auth = WebexAuth::bearer(Secret::new("s3cr3t-token"));
        let h = auth.headers();
        assert!(h[AUTHORIZATION].is_sensitive());
        assert!(!format!("{auth:?}").contains("s3cr3t"));
        assert!(!format!("{h:?}").contains("s3cr3t"));
    }
}
