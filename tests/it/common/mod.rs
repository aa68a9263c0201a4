//! Shared harness for the integration tests: temp dirs, the real binary as a child process
//! with its stderr captured, HTTP helpers, bounded waits and exposition helpers.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tenant_exporter::simulator::Simulator;

/// The longest any single wait in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(50);

pub const SUCCESS_SP1: &str =
    "tenant_exporter_collector_success{collector=\"webex_broadworks\",target=\"sp1\"}";
pub const STALE_SP1: &str =
    "tenant_exporter_collector_stale{collector=\"webex_broadworks\",target=\"sp1\"}";
pub const COLLECTIONS_SP1: &str =
    "tenant_exporter_collections_total{collector=\"webex_broadworks\",target=\"sp1\"}";
pub const FAILURES_SP1: &str =
    "tenant_exporter_collection_failures_total{collector=\"webex_broadworks\",target=\"sp1\"}";
pub const ENTERPRISES_SP1: &str = "webex_broadworks_enterprises{target=\"sp1\"}";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tenant-exporter")
}

/// A command for the binary that talks to 127.0.0.1 directly whatever proxy the
/// environment names.
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args).stdin(Stdio::null());
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        c.env_remove(var);
    }
    c
}

/// A unique directory under the system temp dir, removed on drop, also when the test panics.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tenant-exporter-it-{tag}-"))
            .tempdir()
            .expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Writes `name` atomically (temp file + rename) and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path().join(name);
        let tmp = self.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).expect("write temp file");
        std::fs::rename(&tmp, &path).expect("rename temp file");
        path
    }
}

/// A child's own TMPDIR. The tests stop the binary with SIGKILL, which skips its cleanup, so
/// whatever it creates under the temp dir (the demo's state directory) goes with this one.
fn child_tmpdir(c: &mut Command) -> TempDir {
    let tmp = TempDir::new("child");
    c.env("TMPDIR", tmp.path());
    tmp
}

/// The config the tests use: one Webex target polling the simulator every second.
pub fn config_for(sim: &Simulator, name: &str) -> String {
    config_with(
        "{interval: 1s, timeout: 5s, stale_after: 4s}",
        name,
        &sim.webex_base_url(),
        sim.webex_token(),
    )
}

pub fn config_with(global: &str, name: &str, base_url: &str, token: &str) -> String {
    format!(
        "global: {global}\n\
         webex:\n  \
           - name: {name}\n    \
             base_url: {base_url}\n    \
             access_token: {token}\n    \
             broadworks_enterprises: {{page_size: 10}}\n"
    )
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("response body is UTF-8")
    }
}

/// The output of a finished run of the binary.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

fn spawn_reader(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(&mut from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => into
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&String::from_utf8_lossy(&line)),
            }
        }
    })
}

/// Runs the binary to completion (at most `limit`), capturing stdout and stderr.
pub async fn run(args: &[&str], limit: Duration) -> Output {
    let mut cmd = command(args);
    let _tmp = child_tmpdir(&mut cmd);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tenant-exporter");
    let out = Arc::new(Mutex::new(String::new()));
    let err = Arc::new(Mutex::new(String::new()));
    let readers = [
        spawn_reader(child.stdout.take().expect("stdout"), out.clone()),
        spawn_reader(child.stderr.take().expect("stderr"), err.clone()),
    ];
    let started = Instant::now();
    let status = loop {
        match child.try_wait().expect("try_wait") {
            Some(s) => break s,
            None if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tenant-exporter {args:?} did not exit within {limit:?}; stderr:\n{}",
                    err.lock().unwrap()
                );
            }
            None => tokio::time::sleep(POLL).await,
        }
    };
    for r in readers {
        let _ = r.join();
    }
    let stdout = out.lock().unwrap().clone();
    let stderr = err.lock().unwrap().clone();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// The exporter running as a child process. Killed and reaped on drop.
pub struct Exporter {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    http: reqwest::Client,
    /// Dropped after the child is killed (fields drop after `Drop::drop`).
    _tmp: TempDir,
}

impl Exporter {
    /// Starts the binary with `args` and waits for its `listening` log line.
    pub async fn start(args: &[&str]) -> Exporter {
        let mut cmd = command(args);
        let tmp = child_tmpdir(&mut cmd);
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tenant-exporter");
        let log = Arc::new(Mutex::new(String::new()));
        let reader = spawn_reader(child.stderr.take().expect("stderr"), log.clone());
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        let mut exporter = Exporter {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            reader: Some(reader),
            http,
            _tmp: tmp,
        };
        let started = Instant::now();
        loop {
            if let Some(addr) = listening_address(&exporter.log()) {
                exporter.addr = addr;
                return exporter;
            }
            if let Some(status) = exporter.child.try_wait().expect("try_wait") {
                panic!(
                    "tenant-exporter {args:?} exited ({status}) before listening; stderr:\n{}",
                    exporter.log()
                );
            }
            if started.elapsed() > DEADLINE {
                panic!(
                    "tenant-exporter {args:?} did not log `listening` within {DEADLINE:?}; stderr:\n{}",
                    exporter.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the exporter on an ephemeral port with `config` as its config file.
    pub async fn with_config(dir: &TempDir, config: &str, extra: &[&str]) -> Exporter {
        let path = dir.write("config.yml", config);
        let file = format!("--config.file={}", path.display());
        let mut args = vec![file.as_str(), "--web.listen-address=127.0.0.1:0"];
        args.extend_from_slice(extra);
        Exporter::start(&args).await
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the exporter logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.http.request(method.clone(), self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}; stderr:\n{}", self.log()));
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"))
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request(reqwest::Method::GET, path, &[]).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request(reqwest::Method::GET, path, headers).await
    }

    pub async fn post(&self, path: &str) -> Resp {
        self.request(reqwest::Method::POST, path, &[]).await
    }

    /// `GET path`, which must answer 200; the body as text.
    pub async fn get_text(&self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.text()
    }

    /// `GET /metrics` in the Prometheus text format.
    pub async fn metrics(&self) -> String {
        let r = self
            .get_with("/metrics", &[("Accept", "text/plain; version=0.0.4")])
            .await;
        assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
        r.text()
    }

    /// Scrapes until `cond` holds for the exposition, which is returned; panics after
    /// `DEADLINE` with the last exposition and the log.
    pub async fn wait_metrics(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let body = self.metrics().await;
            if cond(&body) {
                return body;
            }
            if started.elapsed() > DEADLINE {
                panic!(
                    "timed out after {DEADLINE:?} waiting for {what}\n--- last /metrics:\n{body}\n--- stderr:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the exposition has the exact line `line`.
    pub async fn wait_line(&self, line: &str) -> String {
        self.wait_metrics(&format!("line `{line}`"), |b| has_line(b, line))
            .await
    }

    /// `GET path` until `cond` holds for the response.
    pub async fn wait_get(&self, path: &str, what: &str, cond: impl Fn(&Resp) -> bool) -> Resp {
        let started = Instant::now();
        loop {
            let r = self.get(path).await;
            if cond(&r) {
                return r;
            }
            if started.elapsed() > DEADLINE {
                panic!(
                    "timed out after {DEADLINE:?} waiting for {what} on {path}\n--- last response ({}):\n{}\n--- stderr:\n{}",
                    r.status,
                    String::from_utf8_lossy(&r.body),
                    self.log()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the log contains `needle`.
    pub async fn wait_log(&self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            if started.elapsed() > DEADLINE {
                panic!("timed out after {DEADLINE:?} waiting for `{needle}` in stderr:\n{log}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends a signal (`HUP`, `TERM`, ...) with kill(1).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Waits at most `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            if started.elapsed() > limit {
                panic!(
                    "tenant-exporter did not exit within {limit:?}; stderr:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn listening_address(log: &str) -> Option<SocketAddr> {
    log.lines()
        .filter(|l| l.contains(" msg=listening "))
        .find_map(|l| {
            l.split(' ')
                .find_map(|kv| kv.strip_prefix("address="))
                .and_then(|a| a.parse().ok())
        })
}

/// Polls `cond` (typically a look at the simulator) until it holds; panics after `DEADLINE`.
pub async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() <= DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64()
}

/// Whether `body` has exactly the line `line`.
pub fn has_line(body: &str, line: &str) -> bool {
    body.lines().any(|l| l == line)
}

/// The value of the sample `series` (name and labels exactly as exposed).
pub fn value(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split(' ').next()?.parse().ok()
    })
}

/// The value of the counter `series`; a counter that was never incremented is absent and
/// reads as 0.
pub fn count(body: &str, series: &str) -> f64 {
    value(body, series).unwrap_or(0.0)
}

/// The lines of `body` that start with `prefix`.
pub fn lines_starting<'a>(body: &'a str, prefix: &str) -> Vec<&'a str> {
    body.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// Asserts that no secret occurs in any of the named texts (`(name, text)`).
pub fn assert_no_secrets<S: AsRef<str>>(texts: &[(&str, &str)], secrets: &[S]) {
    for (name, text) in texts {
        for s in secrets {
            let s = s.as_ref();
            assert!(
                !text.contains(s),
                "{name} contains the secret {s:?}:\n{text}"
            );
        }
    }
}

/// Sends a raw HTTP/1.0 request without any header but `Host` plus `extra`, and returns
/// the response (HTTP/1.0 keeps the body free of chunked encoding).
pub async fn raw_get(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Resp {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("raw request timed out")
        .expect("raw request failed");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of the response head");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: buf[split + 4..].to_vec(),
    }
}

/// Decompresses a gzip body that must be exactly one gzip member and nothing after it.
pub fn gunzip_single_member(body: &[u8]) -> String {
    let mut dec = flate2::read::GzDecoder::new(body);
    let mut text = String::new();
    dec.read_to_string(&mut text)
        .expect("the body is valid gzip of UTF-8 text");
    let rest = dec.into_inner();
    assert!(
        rest.is_empty(),
        "{} bytes follow the first gzip member",
        rest.len()
    );
    text
}

/// The exposition without the lines that change between two scrapes of an idle exporter:
/// `process_*` and durations.
pub fn stable_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            let name = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            !name.starts_with("process_") && !name.contains("_duration_seconds")
        })
        .collect()
}

/// The 1-based line and column of the first occurrence of `needle` in `text`.
pub fn position(text: &str, needle: &str) -> (usize, usize) {
    text.lines()
        .enumerate()
        .find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
        .unwrap_or_else(|| panic!("{needle:?} not in {text:?}"))
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_value(s: &str) -> bool {
    matches!(s, "+Inf" | "-Inf" | "NaN") || s.parse::<f64>().is_ok()
}

type Labels = Vec<(String, String)>;

/// Parses `{a="x",b="y"}` at the start of `s`; returns the label pairs and what follows.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    let mut labels = Vec::new();
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name:?} repeated"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("invalid escape {other:?}")),
                },
                Some((_, '\n')) => return Err("newline in label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

/// Checks `text` against the Prometheus text format 0.0.4 as the Prometheus parser reads
/// it: well-formed HELP/TYPE/sample lines, TYPE before a family's samples, each family's
/// lines together, no repeated series, no OpenMetrics `# EOF`.
pub fn validate_prometheus_text(text: &str) -> Result<(), String> {
    use std::collections::{HashMap, HashSet};
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("does not end with a newline".into());
    }
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut series: HashSet<String> = HashSet::new();
    let mut enter = |family: &str, current: &mut Option<String>| -> Result<(), String> {
        if current.as_deref() != Some(family) {
            if let Some(prev) = current.take() {
                finished.insert(prev);
            }
            if finished.contains(family) {
                return Err(format!("family {family} is split"));
            }
            *current = Some(family.to_string());
        }
        Ok(())
    };
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line == "# EOF" {
            return Err(err("OpenMetrics # EOF in the text format".into()));
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !is_metric_name(name) {
                return Err(err("invalid metric name in HELP".into()));
            }
            if !helps.insert(name.to_string()) {
                return Err(err("second HELP".into()));
            }
            enter(name, &mut current).map_err(err)?;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !is_metric_name(name) || parts.next().is_some() {
                return Err(err("malformed TYPE".into()));
            }
            if !matches!(
                kind,
                "counter" | "gauge" | "histogram" | "summary" | "untyped"
            ) {
                return Err(err(format!("unknown type {kind:?}")));
            }
            if types.insert(name.to_string(), kind.to_string()).is_some() {
                return Err(err("second TYPE".into()));
            }
            enter(name, &mut current).map_err(err)?;
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            return Err(err("unexpected comment or blank line".into()));
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(err("invalid metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(err)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space before the value".into()))?
            .split(' ');
        let v = fields.next().unwrap_or("");
        if !is_value(v) {
            return Err(err(format!("invalid value {v:?}")));
        }
        if let Some(ts) = fields.next() {
            if ts.parse::<i64>().is_err() {
                return Err(err(format!("invalid timestamp {ts:?}")));
            }
        }
        if fields.next().is_some() {
            return Err(err("trailing fields".into()));
        }
        let family = if types.contains_key(name) {
            name.to_string()
        } else {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|base| {
                    types
                        .get(*base)
                        .is_some_and(|t| t == "histogram" || t == "summary")
                })
                .map(str::to_string)
                .ok_or_else(|| err("sample without a TYPE".into()))?
        };
        if types[&family] == "histogram"
            && name.ends_with("_bucket")
            && !labels.iter().any(|(k, _)| k == "le")
        {
            return Err(err("histogram bucket without le".into()));
        }
        enter(&family, &mut current).map_err(err)?;
        let mut sorted = labels;
        sorted.sort();
        if !series.insert(format!("{name}{sorted:?}")) {
            return Err(err("repeated series".into()));
        }
    }
    Ok(())
}

/// A listener on another origin (127.0.0.1, another port) that no request may reach: it
/// keeps whatever arrives, headers and body, for `assert_untouched`. Stops on drop.
pub struct Trap {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Trap {
    pub async fn start() -> Trap {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the trap listener");
        let addr = listener.local_addr().expect("trap address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let seen = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 << 10];
                    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or(0);
                    seen.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    // Answers like a willing upstream, so following it would look like success.
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\nconnection: close\r\n\r\n{\"items\":[]}")
                        .await;
                });
            }
        });
        Trap {
            addr,
            received,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Fails the test if anything reached the trap.
    pub fn assert_untouched(&self) {
        let got = self.received.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            got.is_empty(),
            "{} connection(s) reached the other origin:\n{}",
            got.len(),
            got.join("\n---\n")
        );
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.task.abort();
    }
}
