//! `--demo`: the simulator of every upstream API and a config that collects from it.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, Global, Secret, Target, TlsConfig};
use crate::simulator::{self, Simulator};
use crate::sources::commvault::config::{CommvaultCredentials, CommvaultTarget};
use crate::sources::voss::config::VossTarget;
use crate::sources::webex::config::{
    Admin, BroadworksConfig, ManagedOrgsConfig, OAuthConfig, WebexCredentials, WebexTarget,
};

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the demo simulator: {0}")]
    Simulator(#[source] std::io::Error),
    #[error("cannot create {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("simulator URL {url}: {source}")]
    Url {
        url: String,
        source: url::ParseError,
    },
}

/// A running demo. The simulator stops and the demo's state directory is removed on drop.
pub struct Demo {
    pub config: Config,
    /// Kept for its drop, which stops the simulator.
    _simulator: Simulator,
    state_dir: PathBuf,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

impl Demo {
    pub async fn start(enterprises: u32) -> Result<Demo, DemoError> {
        let simulator = Simulator::start(simulator::Options {
            enterprises: enterprises as usize,
            ..Default::default()
        })
        .await
        .map_err(DemoError::Simulator)?;

        // The OAuth integration rotates its refresh token like the real one, so the demo
        // keeps it in a private directory of its own.
        let state_dir =
            std::env::temp_dir().join(format!("tenant-exporter-demo-{}", std::process::id()));
        let refresh_token_file = state_dir.join("webex-refresh-token");
        {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&state_dir)
                .map_err(|source| DemoError::StateDir {
                    path: state_dir.clone(),
                    source,
                })?;
        }
        let oauth = &simulator.options().oauth;
        let voss = &simulator.options().voss;
        let commvault = &simulator.options().commvault;
        crate::sources::webex::oauth::write_token_file(
            &refresh_token_file,
            &oauth.refresh_token,
            &mut |_| Ok(()),
        )
        .map_err(|source| DemoError::TokenFile {
            path: refresh_token_file.clone(),
            source,
        })?;

        let interval = Duration::from_secs(15);
        let url = |url: String| url.parse().map_err(|source| DemoError::Url { url, source });
        let config = Config {
            global: Global {
                interval,
                timeout: Duration::from_secs(10),
                stale_after: Duration::from_secs(300),
                ..Global::default()
            },
            targets: vec![
                Target::Webex(WebexTarget {
                    name: "demo".into(),
                    base_url: url(simulator.webex_base_url())?,
                    tls: TlsConfig::default(),
                    credentials: WebexCredentials::OAuth(OAuthConfig {
                        client_id: oauth.client_id.clone(),
                        client_secret: Secret::new(oauth.client_secret.clone()),
                        refresh_token_file,
                    }),
                    broadworks: Some(BroadworksConfig {
                        starts_with: None,
                        interval,
                        // Small pages in the small demo show paging at work.
                        page_size: if enterprises <= 100 { 10 } else { 1000 },
                    }),
                    managed_orgs: Some(ManagedOrgsConfig {
                        admins: ["alice", "bob"]
                            .iter()
                            .map(|n| Admin {
                                name: n.to_string(),
                                person_id: format!("Y2lzY29zcGFyazovL3VzL1BFT1BMRS9{n}"),
                            })
                            .collect(),
                        interval,
                    }),
                    metrics: Default::default(),
                }),
                Target::Voss(VossTarget {
                    name: "voss-demo".into(),
                    base_url: url(simulator.voss_base_url())?,
                    username: voss.username.clone(),
                    password: Secret::new(voss.password.clone()),
                    hierarchy: voss.hierarchy.clone(),
                    // Smaller than the customer count, so the demo pages.
                    page_size: 5,
                    interval,
                    tls: TlsConfig::default(),
                    metrics: Default::default(),
                }),
                Target::Commvault(CommvaultTarget {
                    name: "commvault-demo".into(),
                    base_url: url(simulator.commvault_base_url())?,
                    credentials: CommvaultCredentials::Password {
                        username: commvault.username.clone(),
                        password: Secret::new(commvault.password.clone()),
                    },
                    device_id: "tenant-exporter-demo".into(),
                    organizations: None,
                    interval,
                    concurrency: 4,
                    tls: TlsConfig::default(),
                    stale_after: Duration::from_secs(300),
                    metrics: Default::default(),
                }),
            ],
        };
        tracing::info!(upstream = %simulator.addr(), enterprises, "demo simulator started");
        Ok(Demo {
            config,
            _simulator: simulator,
            state_dir,
        })
    }
}
