//! Helpers shared by the integration tests: a simulator on port 0, a config pointing at
//! it, the real binary, and checks on what ended up on disk.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Output;
use wemeet_archiver::app::{App, BackfillReport};
use wemeet_archiver::config::Config;
use wemeet_sim::{ManifestEntry, SimConfig, SimHandle};

/// The simulated account's "now" (2026-11-01T00:00:00Z): fixed, so dates are reproducible.
pub const SIM_NOW: i64 = 1_793_491_200;

pub async fn start_sim(config: SimConfig) -> SimHandle {
    wemeet_sim::start(
        SimConfig {
            start: Some(SIM_NOW),
            ..config
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("simulator starts")
}

/// Writes a config for `sim` into `dir` (archive in `dir/archive`, database in
/// `dir/state.db`); `extra` is appended to the `[download]` table.
pub fn write_config(dir: &Path, sim: &SimHandle, download_extra: &str) -> PathBuf {
    let c = sim.credentials();
    let path = dir.join("config.toml");
    let text = format!(
        "[api]\nbase_url = \"{}\"\napp_id = \"{}\"\nsecret_id = \"{}\"\nsecret_key = \"{}\"\n\
         operator_id = \"{}\"\n\n[storage]\npath = \"archive\"\n\n[database]\npath = \"state.db\"\n\n\
         [download]\n{download_extra}\n",
        sim.base_url(),
        c.app_id,
        c.secret_id,
        c.secret_key,
        c.operator_id
    );
    std::fs::write(&path, text).unwrap();
    path
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
    let app = App::open(Config::load(config).unwrap()).await.unwrap();
    app.backfill(range.0, range.1, false, Default::default())
        .await
        .unwrap()
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

/// Every regular file under `root`, relative, sorted.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
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

pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339()
}

/// Runs `backfill` over `full_range(days)` as a separate process (to be killed at will),
/// with only `envs` of the secrets' variables set; its log goes to `backfill.log` beside
/// the config.
pub fn spawn_backfill(config: &Path, days: u32, envs: &[(&str, &str)]) -> tokio::process::Child {
    let (since, until) = full_range(days);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name("backfill.log"))
        .unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wemeet-archiver"));
    cmd.args(["--config", config.to_str().unwrap(), "backfill"])
        .args(["--since", &rfc3339(since), "--until", &rfc3339(until)]);
    for var in [
        "WEMEET_SECRET_KEY",
        "WEMEET_SECRET_ID",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
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

/// Sends SIGTERM to `pid` (as systemd stops a service) with `kill(1)`; returns its status.
pub fn sigterm(pid: u32) -> i32 {
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs")
        .code()
        .unwrap_or(-1)
}

/// The webhook subscription of the tests: a console Token (25 characters) and
/// EncodingAESKey (43).
pub const WEBHOOK_TOKEN: &str = "Tk25charsWemeetArchiver01";
pub const WEBHOOK_AES_KEY: &str = "WemeetArchiverWebhookVectorKey0123456789abc";

/// A port free on loopback now (for a listener the config names before it starts).
pub fn unused_local_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
        early: std::time::Duration::ZERO,
        repeat: 0,
    }
}

/// Starts `App::run` in-process on the config at `path`; cancel the token to stop it,
/// then await the task.
pub async fn run_in_process(
    path: &Path,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let app = App::open(Config::load(path).unwrap()).await.unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    let task = tokio::spawn(async move { app.run(None, stop).await.unwrap() });
    (cancel, task)
}

/// Starts the real binary's `run` on the config at `path`, its log appended to `run.log`
/// beside it; killed when dropped.
pub fn spawn_run(path: &Path) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path.with_file_name("run.log"))
        .unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_wemeet-archiver"))
        .args(["--config", path.to_str().unwrap(), "run"])
        .env_remove("WEMEET_SECRET_KEY")
        .env_remove("WEMEET_SECRET_ID")
        .env_remove("WEMEET_WEBHOOK_TOKEN")
        .env_remove("WEMEET_WEBHOOK_AES_KEY")
        .env_remove("NOTIFY_SOCKET")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}
