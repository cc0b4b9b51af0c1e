//! The binary as an admin runs it: exit codes, config errors, what it logs.

use crate::common::*;
use wemeet_sim::SimConfig;

/// A backfill of every meeting of these tests' simulators.
const BACKFILL_ALL: [&str; 5] = ["backfill", "--since", "2026-10-20", "--until", "2026-11-02"];

#[tokio::test]
async fn bad_configs_exit_2_naming_the_key_and_change_nothing() {
    let cases = [
        (
            "[database]",
            "[database]\ndatabse_path = \"x\"",
            "databse_path",
        ),
        ("operator_id = \"admin\"", "", "operator_id"),
        (
            "[storage]",
            "[download]\nworkers = \"many\"\n[storage]",
            "workers",
        ),
        (
            "[storage]",
            "[download]\nworkers = 0\n[storage]",
            "download.workers",
        ),
        ("app_id = \"200000001\"", "app_id = \"x\"", "api.app_id"),
        ("secret_key = \"not-a-real-key\"", "", "api.secret_key"),
        (
            "path = \"archive\"",
            "path = \"archive\"\ntimezone = \"Nowhere/City\"",
            "storage.timezone",
        ),
        ("http://127.0.0.1:9", "ftp:/x", "api.base_url"),
    ];
    for (from, to, key) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, offline_config().replacen(from, to, 1)).unwrap();
        let out = run_configured(&config, &["backfill", "--since", "2024-01-01"], &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
        assert!(stderr.contains(key), "{key} not named in: {stderr}");
        assert!(
            !stderr.contains("not-a-real-key"),
            "secret printed: {stderr}"
        );
        // Nothing was created: no database, no archive.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "{key}: {left:?}");
    }
}

#[tokio::test]
async fn bad_usage_exits_2() {
    let out = run_binary(
        &[
            "backfill",
            "--since",
            "last tuesday",
            "--config",
            "/nonexistent",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let out = run_binary(&["frobnicate"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_credentials_exit_2_with_advice() {
    let sim = start_sim(meetings(2, 3)).await;
    let archiver = Archiver::new(&sim, "");
    let text = std::fs::read_to_string(&archiver.config).unwrap();
    let secret_key = sim.credentials().secret_key;
    std::fs::write(&archiver.config, text.replace(&secret_key, "wrong-key")).unwrap();
    let out = run_configured(&archiver.config, &BACKFILL_ALL, &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("api.secret_key"), "{stderr}");
    assert!(!stderr.contains("wrong-key"), "{stderr}");
}

/// Runs a real backfill at debug level with faults that make the archiver log errors,
/// address fetches and retries, then searches everything it printed for secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_log_line_contains_a_secret_key_password_or_download_token() {
    let sim = start_sim(SimConfig {
        stale_addresses_first: 1,
        reset_first: 1,
        ..transcoded(8, 10)
    })
    .await;
    let archiver = Archiver::new(&sim, "");
    let out = run_configured(&archiver.config, &BACKFILL_ALL, &[("WEMEET_LOG", "debug")]).await;
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{output}");
    for event in ["download addresses fetched", "refused the address"] {
        assert!(
            output.contains(event),
            "the faults did not fire ({event}): {output}"
        );
    }
    let mut secrets = vec![sim.credentials().secret_key];
    secrets.extend(sim.passwords());
    secrets.extend(sim.issued_tokens());
    assert!(secrets.len() > 10);
    for secret in secrets {
        assert!(
            !output.contains(&secret),
            "secret {secret:?} leaked into the logs"
        );
    }
    let status = run_configured(&archiver.config, &["status", "--json"], &[]).await;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        status["files"]["archived"].as_u64(),
        Some(sim.manifest().len() as u64)
    );
}
