//! Helpers shared by the integration tests: a simulator on port 0 and its datasets, an
//! archiver configured for it, the real binary, waiting for a condition, and checks on what
//! ended up on disk.

use sha2::{Digest, Sha256};
use std::ops::{ControlFlow, RangeInclusive};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use wemeet_archiver::Db;
use wemeet_archiver::Listeners;
use wemeet_archiver::config::Config;
use wemeet_archiver::{App, BackfillReport};
use wemeet_sim::{ManifestEntry, SimConfig, SimCredentials, SimHandle, SimStats};

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
/// The simulator's body chunk: what it may count as served beyond what a client received.
pub const CHUNK: u64 = 64 * KIB;

/// The simulated account's "now" (2026-11-01T00:00:00Z): fixed, so dates are reproducible.
pub const SIM_NOW: i64 = 1_793_491_200;

/// A simulator anchored at [`SIM_NOW`].
pub async fn start_sim(config: SimConfig) -> SimHandle {
    start_live_sim(SimConfig {
        start: Some(SIM_NOW),
        ..config
    })
    .await
}

/// A simulator on the real clock, for the tests that look at windows relative to now: the
/// daemon's live window (`[now - lookback, now]`), listings queried around now.
pub async fn start_live_sim(config: SimConfig) -> SimHandle {
    wemeet_sim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

/// `meetings` meetings over the `days` before the simulator's now, the most recent still
/// recording (the simulator's default share).
pub fn meetings(meetings: usize, days: u32) -> SimConfig {
    SimConfig {
        meetings,
        days,
        ..SimConfig::default()
    }
}

/// [`meetings`] with none still recording: the manifest taken at start is everything
/// there is to archive.
pub fn transcoded(meetings: usize, days: u32) -> SimConfig {
    SimConfig {
        pending_fraction: 0.0,
        ..self::meetings(meetings, days)
    }
}

/// Changes to a [`SimConfig`] that chain onto a preset such as [`transcoded`], so that a
/// test's dataset reads on one line.
pub trait Dataset {
    /// Recordings of `min..=max` bytes each: their size sets how long a test runs.
    fn sizes(self, min: u64, max: u64) -> SimConfig;
    /// `per_meeting` recordings per meeting, of `min..=max` bytes each.
    fn files(self, per_meeting: RangeInclusive<u32>, min: u64, max: u64) -> SimConfig;
    /// Any other change, such as one fault: `.with(|c| c.reset_first = 1)`.
    fn with(self, change: impl FnOnce(&mut SimConfig)) -> SimConfig;
}

impl Dataset for SimConfig {
    fn sizes(self, min: u64, max: u64) -> SimConfig {
        SimConfig {
            min_file_size: min,
            max_file_size: max,
            ..self
        }
    }

    fn files(self, per_meeting: RangeInclusive<u32>, min: u64, max: u64) -> SimConfig {
        SimConfig {
            files_per_meeting: per_meeting,
            ..self.sizes(min, max)
        }
    }

    fn with(mut self, change: impl FnOnce(&mut SimConfig)) -> SimConfig {
        change(&mut self);
        self
    }
}

/// A config for the API at `base_url` that signs with `c`: archive in `archive`, database
/// `state.db` (both beside the config), then `tables`.
fn config_text(base_url: &str, c: &SimCredentials, tables: &str) -> String {
    format!(
        "[api]\nbase_url = \"{base_url}\"\napp_id = \"{}\"\nsecret_id = \"{}\"\nsecret_key = \"{}\"\n\
         operator_id = \"{}\"\n\n[storage]\npath = \"archive\"\n\n[database]\npath = \"state.db\"\n{tables}",
        c.app_id, c.secret_id, c.secret_key, c.operator_id
    )
}

/// A valid config whose API nobody answers (port 9, discard): for the runs that must stop
/// before any call.
pub fn offline_config() -> String {
    let credentials = SimCredentials {
        app_id: "200000001".into(),
        secret_id: "AKIDexample".into(),
        secret_key: "not-a-real-key".into(),
        ..SimCredentials::default()
    };
    config_text("http://127.0.0.1:9", &credentials, "")
}

/// Writes `dir/config.toml` for `sim` (the archive in `dir/archive`, the database
/// `dir/state.db`); `download_extra` is appended to the `[download]` table (and may go on
/// with tables of its own). Returns its path.
pub fn write_config(dir: &Path, sim: &SimHandle, download_extra: &str) -> PathBuf {
    let config = dir.join("config.toml");
    let tables = format!("\n[download]\n{download_extra}\n");
    std::fs::write(
        &config,
        config_text(&sim.base_url(), &sim.credentials(), &tables),
    )
    .unwrap();
    config
}

/// An archiver configured for a simulator in a temporary folder, removed when this is
/// dropped: `config.toml`, the archive in `archive/`, the database `state.db`.
pub struct Archiver {
    pub dir: TempDir,
    pub config: PathBuf,
}

impl Archiver {
    /// Configured for `sim`; `download_extra` is appended to the `[download]` table (and
    /// may go on with tables of its own).
    pub fn new(sim: &SimHandle, download_extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), sim, download_extra);
        Self { dir, config }
    }

    pub fn archive(&self) -> PathBuf {
        self.dir.path().join("archive")
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    pub async fn store(&self) -> Db {
        Db::open(&self.db()).await.unwrap()
    }

    /// Backfills `full_range(days)` in-process and asserts that everything was archived.
    pub async fn backfill_all(&self, days: u32) -> BackfillReport {
        let report = backfill(&self.config, full_range(days)).await;
        assert!(report.complete(), "{report:#?}");
        report
    }
}

/// Adds `lines` to the `[api]` table of the config at `path` (budgets, mostly).
pub fn add_api_keys(path: &Path, lines: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(
        path,
        text.replacen("\n[storage]", &format!("{lines}\n\n[storage]"), 1),
    )
    .unwrap();
}

/// The range that covers every meeting of a simulator anchored at [`SIM_NOW`].
pub fn full_range(days: u32) -> (i64, i64) {
    (SIM_NOW - i64::from(days + 1) * 86_400, SIM_NOW + 86_400)
}

/// Runs a backfill in-process, as `wemeet-archiver backfill` does.
pub async fn backfill(config: &Path, range: (i64, i64)) -> BackfillReport {
    backfill_loaded(Config::load(config).unwrap(), range).await
}

/// [`backfill`] with a config already loaded, such as one read with a simulated environment.
pub async fn backfill_loaded(config: Config, range: (i64, i64)) -> BackfillReport {
    let app = App::open(config).await.unwrap();
    // Boxed: the job's future is large, and tests nest it in futures of their own.
    let report = Box::pin(app.backfill(range.0, range.1, false, Default::default()))
        .await
        .unwrap();
    // Closed, not only dropped: a test may remove the database right after.
    app.store.close().await;
    report
}

/// Asserts that the simulator never limited the listing and never saw more than
/// `per_minute` listing calls in 60 s.
pub fn assert_within_rate_limit(stats: &SimStats, per_minute: u64) {
    assert_eq!(stats.rate_limited, 0, "{stats:#?}");
    assert!(stats.max_calls_in_60s <= per_minute, "{stats:#?}");
}

/// Calls `probe` every `every` until it breaks with a value, and returns that; panics
/// after `limit` with what the last probe said it was still waiting for.
pub async fn wait_until<T>(
    limit: Duration,
    every: Duration,
    mut probe: impl AsyncFnMut() -> ControlFlow<T, String>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match probe().await {
            ControlFlow::Break(value) => return value,
            ControlFlow::Continue(waiting) => assert!(Instant::now() < deadline, "{waiting}"),
        }
        tokio::time::sleep(every).await;
    }
}

pub fn sha256_file(path: &Path) -> String {
    use std::io::Read;
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

/// Every regular file under `root`, relative, sorted; not the archive's marker at the root
/// (which account and layout it holds) nor the program's own files (the audit trail and the
/// holds under `.wemeet-archiver/`, which tests/it/audit.rs checks).
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if path == root.join(wemeet_archiver::internals::RESERVED_DIR) {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_owned());
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.retain(|p| p != Path::new(wemeet_archiver::internals::MARKER));
    out.sort();
    out
}

/// Asserts that every manifest file is archived under `root` with its size and SHA-256, and
/// that nothing but recordings and `meeting.json` files is there.
pub fn assert_archive_matches(root: &Path, manifest: &[ManifestEntry]) {
    let files = files_under(root);
    let recordings: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.file_name().unwrap() != "meeting.json")
        .collect();
    assert_eq!(
        recordings.len(),
        manifest.len(),
        "recordings on disk: {recordings:#?}"
    );
    for entry in manifest {
        let name = format!("{}.mp4", entry.record_file_id);
        let rel = recordings
            .iter()
            .find(|p| p.file_name().unwrap().to_str() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{name} is not in the archive"));
        // YYYY/MM/DD/code-subject/id.mp4
        assert_eq!(rel.components().count(), 5, "{rel:?} is outside the layout");
        let path = root.join(rel);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            entry.record_size,
            "{rel:?}"
        );
        assert_eq!(sha256_file(&path), entry.sha256, "{rel:?}");
    }
}

/// Runs the real binary with `args`, without stdin, and returns its output.
pub async fn run_binary(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wemeet-archiver"));
    cmd.args(args)
        .env_remove("WEMEET_SECRET_KEY")
        .env_remove("WEMEET_SECRET_ID")
        .env_remove("WEMEET_ARCHIVER_CONFIG")
        .stdin(std::process::Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().await.expect("binary runs")
}

/// Runs the real binary with `--config config` and `args`, as [`run_binary`] does.
pub async fn run_configured(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let config = ["--config", config.to_str().unwrap()];
    run_binary(&[&config[..], args].concat(), envs).await
}

pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339()
}

/// The arguments of `backfill` over `full_range(days)`, then `extra`.
pub fn backfill_args(days: u32, extra: &[&str]) -> Vec<String> {
    let (since, until) = full_range(days);
    let range = ["--since", &rfc3339(since), "--until", &rfc3339(until)];
    let args = ["backfill"].iter().chain(&range).chain(extra);
    args.map(|a| a.to_string()).collect()
}

/// Runs the real binary's `backfill` over `full_range(days)` (then `extra`) on `config`.
pub async fn run_backfill(config: &Path, days: u32, extra: &[&str]) -> Output {
    let args = backfill_args(days, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_configured(config, &args, &[]).await
}

/// Runs `backfill` over `full_range(days)` as [`spawn_archiver`] does.
pub fn spawn_backfill(config: &Path, days: u32, envs: &[(&str, &str)]) -> tokio::process::Child {
    let args = backfill_args(days, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn_archiver(config, &args, envs)
}

/// Sends SIGTERM to `pid` (as systemd stops a service) with `kill(1)`; returns its status.
pub fn sigterm(pid: u32) -> i32 {
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs")
        .code()
        .unwrap_or(-1)
}

/// Appends a `[prune]` table holding `lines` to the config at `path`.
pub fn add_prune_table(path: &Path, lines: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, format!("{text}\n[prune]\n{lines}\n")).unwrap();
}

/// Runs the real binary with `--config config` and `args` as a separate process (to be
/// killed at will), with only `envs` of the secrets' variables set; its log goes to
/// `archiver.log` beside the config.
pub fn spawn_archiver(
    config: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name("archiver.log"))
        .unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wemeet-archiver"));
    cmd.args(["--config", config.to_str().unwrap()]).args(args);
    for var in [
        "WEMEET_SECRET_KEY",
        "WEMEET_SECRET_ID",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "WEMEET_WEBHOOK_TOKEN",
        "WEMEET_WEBHOOK_AES_KEY",
        "NOTIFY_SOCKET",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(envs.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The webhook subscription of the tests: a console Token (25 characters) and
/// EncodingAESKey (43).
pub const WEBHOOK_TOKEN: &str = "Tk25charsWemeetArchiver01";
pub const WEBHOOK_AES_KEY: &str = "WemeetArchiverWebhookVectorKey0123456789abc";

/// A listener on a loopback port the system picked: the test holds it from the start, so
/// no other process can take the port before the server it is handed to serves it.
pub async fn local_listener() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// The port `listener` holds.
pub fn port_of(listener: &tokio::net::TcpListener) -> u16 {
    listener.local_addr().unwrap().port()
}

/// Appends a `[webhook]` table listening on `127.0.0.1:{port}` at `/webhook`, with the
/// tests' Token and EncodingAESKey, to the config at `path`.
pub fn add_webhook_table(path: &Path, port: u16) {
    let mut text = std::fs::read_to_string(path).unwrap();
    text.push_str(&format!(
        "\n[webhook]\nlisten = \"127.0.0.1:{port}\"\npath = \"/webhook\"\n\
         token = \"{WEBHOOK_TOKEN}\"\nencoding_aes_key = \"{WEBHOOK_AES_KEY}\"\n"
    ));
    std::fs::write(path, text).unwrap();
}

/// The simulator's side of the same subscription, posting to `127.0.0.1:{port}/webhook`.
pub fn sim_webhook(port: u16) -> wemeet_sim::SimWebhook {
    wemeet_sim::SimWebhook {
        url: format!("http://127.0.0.1:{port}/webhook"),
        token: WEBHOOK_TOKEN.into(),
        aes_key: Some(WEBHOOK_AES_KEY.into()),
        early: Duration::ZERO,
        repeat: 0,
    }
}

/// Starts `App::run_on` in-process on the config at `path`, on `listeners` (those the
/// test bound on port 0), backfilling from `since` (UNIX seconds) if given; cancel the
/// token to stop it, then await the task.
pub async fn run_in_process(
    path: &Path,
    since: Option<i64>,
    listeners: Listeners,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let app = App::open(Config::load(path).unwrap()).await.unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    let task = tokio::spawn(async move { app.run_on(since, listeners, stop).await.unwrap() });
    (cancel, task)
}

/// Starts the real binary's `run` on the config at `path`, as [`spawn_archiver`] does.
pub fn spawn_run(path: &Path) -> tokio::process::Child {
    spawn_archiver(path, &["run"], &[])
}

/// One sample of a Prometheus scrape, `None` when absent.
pub fn sample(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition format");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            // OpenMetrics names a counter `X` and its sample `X_total`: prometheus-parse
            // then reads the sample as untyped.
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

/// What `/metrics` would answer for `store`: the service's metrics, rendered in-process.
pub async fn metrics_of(store: &Db) -> String {
    use wemeet_api::Endpoint;
    use wemeet_archiver::internals::Budget;
    let budget = |endpoint| {
        let store = store.clone();
        async move { std::sync::Arc::new(Budget::load(store, endpoint, 10).await.unwrap()) }
    };
    let source = wemeet_archiver::internals::MetricsSource {
        store: store.clone(),
        budgets: wemeet_archiver::Budgets {
            records: budget(Endpoint::Records).await,
            addresses: budget(Endpoint::Addresses).await,
            deletes: budget(Endpoint::Delete).await,
        },
        poll_interval: Duration::from_secs(20),
        webhook: None,
        disk_full_pauses: Default::default(),
        retention_mode: None,
    };
    source.render().await.unwrap()
}

/// A command's exit code, standard output and standard error, for an assertion's message.
pub fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The arguments of `hold add --meeting MEETING --reason REASON`.
pub fn hold_meeting<'a>(meeting_record_id: &'a str, reason: &'a str) -> [&'a str; 6] {
    [
        "hold",
        "add",
        "--meeting",
        meeting_record_id,
        "--reason",
        reason,
    ]
}

/// The record_file_ids of `files`, to compare with what the simulator deleted.
pub fn record_file_ids(
    files: &[wemeet_archiver::internals::FileRow],
) -> std::collections::BTreeSet<String> {
    files.iter().map(|f| f.record_file_id.to_string()).collect()
}

/// The database's row of a file the simulator lists, asserted archived with its SHA-256.
pub async fn assert_archived(
    store: &Db,
    entry: &ManifestEntry,
) -> wemeet_archiver::internals::FileRow {
    let row = store
        .file(&entry.record_file_id.as_str().into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, wemeet_archiver::FileStatus::Archived, "{row:?}");
    assert_eq!(row.sha256.as_deref(), Some(entry.sha256.as_str()));
    row
}
