//! Webex integration tokens: refresh before expiry and on 401, and persist a rotated refresh
//! token to disk before it is used, so a crash or restart never loses access.

use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use serde::Deserialize;
use url::Url;

use crate::config::{OAuthConfig, Secret};
use crate::metrics::{credential_labels, SelfMetrics};
use crate::sources::CollectError;
use crate::upstream::{Client, Request, RequestCtx};

/// Never refresh earlier than this before expiry, however long the token lives.
const MIN_REFRESH_MARGIN: Duration = Duration::from_secs(300);

pub struct OAuth {
    target: String,
    token_url: Url,
    config: OAuthConfig,
    metrics: Arc<SelfMetrics>,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The refresh token in force; read from the file on first use.
    refresh: Option<Secret>,
    access: Option<Access>,
    /// A rotated refresh token that could not be written yet: nothing is used until it is.
    unsaved: bool,
}

struct Access {
    token: Secret,
    expires_at: SystemTime,
    lifetime: Duration,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
    refresh_token_expires_in: Option<u64>,
}

impl OAuth {
    pub fn new(
        target: &str,
        token_url: Url,
        config: OAuthConfig,
        metrics: Arc<SelfMetrics>,
    ) -> Self {
        OAuth {
            target: target.to_string(),
            token_url,
            config,
            metrics,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// A valid access token, refreshing it first when it expires soon.
    pub async fn access_token(
        &self,
        client: &Client,
        ctx: &RequestCtx,
    ) -> Result<Secret, CollectError> {
        let mut state = self.state.lock().await;
        if state.unsaved {
            self.save(&mut state)?;
        }
        if let Some(a) = &state.access {
            let margin = (a.lifetime / 10).max(MIN_REFRESH_MARGIN);
            if SystemTime::now() + margin < a.expires_at {
                return Ok(a.token.clone());
            }
        }
        self.refresh(&mut state, client, ctx).await
    }

    /// Forgets `used` after the API rejected it, so the next call refreshes.
    pub async fn invalidate(&self, used: &Secret) {
        let mut state = self.state.lock().await;
        if state.access.as_ref().is_some_and(|a| &a.token == used) {
            state.access = None;
        }
    }

    async fn refresh(
        &self,
        state: &mut State,
        client: &Client,
        ctx: &RequestCtx,
    ) -> Result<Secret, CollectError> {
        let refresh = match &state.refresh {
            Some(r) => r.clone(),
            None => {
                let r = read_token_file(&self.config.refresh_token_file)
                    .map_err(CollectError::Credential)?;
                state.refresh = Some(r.clone());
                r
            }
        };
        let labels = |c: &str| credential_labels(&self.target, c);
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("client_secret", self.config.client_secret.expose())
            .append_pair("refresh_token", refresh.expose())
            .finish();
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let request = Request {
            method: reqwest::Method::POST,
            url: self.token_url.clone(),
            headers,
            body: Some(Bytes::from(body)),
            tracking_header: Some("TrackingID"),
        };
        let result = async {
            let resp = client.send(ctx, request).await?;
            let t: TokenResponse = resp.json()?;
            Ok::<_, CollectError>(t)
        }
        .await;
        let t = match result {
            Ok(t) if !t.access_token.is_empty() => t,
            Ok(_) => {
                self.metrics
                    .credential_refresh_failures
                    .get_or_create(&labels("access_token"))
                    .inc();
                return Err(CollectError::Credential(
                    "token endpoint returned an empty access token".into(),
                ));
            }
            Err(e) => {
                self.metrics
                    .credential_refresh_failures
                    .get_or_create(&labels("access_token"))
                    .inc();
                return Err(CollectError::Credential(format!(
                    "refreshing the access token failed: {e}"
                )));
            }
        };
        let now = SystemTime::now();
        let lifetime = Duration::from_secs(t.expires_in.unwrap_or(3600));
        state.access = Some(Access {
            token: Secret::new(t.access_token),
            expires_at: now + lifetime,
            lifetime,
        });
        self.metrics
            .credential_refreshes
            .get_or_create(&labels("access_token"))
            .inc();
        self.metrics
            .credential_expiry
            .get_or_create(&labels("access_token"))
            .set(unix(now + lifetime));
        if let Some(secs) = t.refresh_token_expires_in {
            self.metrics
                .credential_expiry
                .get_or_create(&labels("refresh_token"))
                .set(unix(now + Duration::from_secs(secs)));
        }
        if let Some(new) = t
            .refresh_token
            .filter(|r| !r.is_empty() && r != refresh.expose())
        {
            state.refresh = Some(Secret::new(new));
            state.unsaved = true;
            self.metrics
                .credential_refreshes
                .get_or_create(&labels("refresh_token"))
                .inc();
            self.save(state)?;
            tracing::info!(target = %self.target, file = %self.config.refresh_token_file.display(), "saved the rotated refresh token");
        }
        Ok(state
            .access
            .as_ref()
            .map(|a| a.token.clone())
            .unwrap_or_else(|| Secret::new("")))
    }

    fn save(&self, state: &mut State) -> Result<(), CollectError> {
        let Some(token) = &state.refresh else {
            return Ok(());
        };
        match write_token_file(&self.config.refresh_token_file, token.expose(), &mut |_| {
            Ok(())
        }) {
            Ok(()) => {
                state.unsaved = false;
                Ok(())
            }
            Err(e) => {
                self.metrics
                    .credential_refresh_failures
                    .get_or_create(&credential_labels(&self.target, "refresh_token"))
                    .inc();
                Err(CollectError::Credential(format!(
                    "cannot save the rotated refresh token to {}: {e}; it is kept in memory and not used until saved",
                    self.config.refresh_token_file.display()
                )))
            }
        }
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

pub fn read_token_file(path: &Path) -> Result<Secret, String> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(Secret::new(s.trim())),
        Ok(_) => Err(format!("refresh token file {} is empty", path.display())),
        Err(e) => Err(format!(
            "cannot read refresh token file {}: {e}",
            path.display()
        )),
    }
}

/// The steps of `write_token_file`, for tests that stop it part-way, as a crash would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    TempCreated,
    TempWritten,
    TempSynced,
    Renamed,
}

/// Replaces `path` with `token` atomically: write a temporary file in the same directory
/// (mode 0600), fsync it, rename it over `path`, fsync the directory. At every point the file
/// holds either the old token or the new one, whole. `after` runs after each step; an error
/// from it stops the write there.
pub fn write_token_file(
    path: &Path,
    token: &str,
    after: &mut dyn FnMut(Step) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp: PathBuf = dir.join(tmp_name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    after(Step::TempCreated)?;
    f.write_all(token.as_bytes())?;
    f.write_all(b"\n")?;
    after(Step::TempWritten)?;
    f.sync_all()?;
    after(Step::TempSynced)?;
    std::fs::rename(&tmp, path)?;
    after(Step::Renamed)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "tenant-exporter-oauth-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_write_stopped_at_any_step_leaves_a_whole_old_or_new_token() {
        let dir = temp_dir("steps");
        let path = dir.join("refresh");
        for stop_at in [
            Step::TempCreated,
            Step::TempWritten,
            Step::TempSynced,
            Step::Renamed,
        ] {
            std::fs::write(&path, "old-token\n").unwrap();
            let err = write_token_file(&path, "new-token", &mut |s| {
                if s == stop_at {
                    Err(io::Error::other("crash"))
                } else {
                    Ok(())
                }
            });
            assert!(err.is_err());
            let on_disk = read_token_file(&path).unwrap();
            let expected = if stop_at == Step::Renamed {
                "new-token"
            } else {
                "old-token"
            };
            assert_eq!(on_disk.expose(), expected, "stopped after {stop_at:?}");
            // The next write succeeds over whatever the crash left behind.
            write_token_file(&path, "next-token", &mut |_| Ok(())).unwrap();
            assert_eq!(read_token_file(&path).unwrap().expose(), "next-token");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn token_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = temp_dir("mode");
        let path = dir.join("refresh");
        std::fs::write(&path, "old\n").unwrap();
        write_token_file(&path, "new", &mut |_| Ok(())).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreadable_or_empty_token_files_are_clear_errors() {
        let dir = temp_dir("read");
        let empty = dir.join("empty");
        std::fs::write(&empty, "  \n").unwrap();
        assert!(read_token_file(&empty).unwrap_err().contains("is empty"));
        assert!(read_token_file(&dir.join("missing"))
            .unwrap_err()
            .contains("cannot read"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
