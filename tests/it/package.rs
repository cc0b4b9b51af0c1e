//! What the Debian package installs besides the binary: the systemd units and their user,
//! the man pages and completions written from the clap definitions, and the alert rules
//! and dashboard of `contrib/`, held to the metrics the service really exports.

use crate::common::*;
use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn source(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(source(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const UNITS: [&str; 2] = [
    "systemd/wemeet-archiver.service",
    "systemd/wemeet-archiver@.service",
];

#[test]
fn both_units_are_hardened_run_as_the_packages_user_and_the_template_is_per_account() {
    for path in UNITS {
        let unit = read(path);
        for needed in [
            "Type=notify",
            "ExecStart=/usr/bin/wemeet-archiver --config /etc/wemeet-archiver/",
            "User=wemeet-archiver\n",
            "StateDirectory=",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "NoNewPrivileges=yes",
            "CapabilityBoundingSet=\n",
            "SystemCallFilter=@system-service",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            "UMask=0077",
            "LoadCredential=wemeet-secret-key:",
            "WatchdogSec=",
            "RestartPreventExitStatus=2",
        ] {
            assert!(unit.contains(needed), "{path} lacks {needed:?}");
        }
        assert!(!unit.contains("DynamicUser=yes"), "{path}");
    }
    // One account per instance: its config, its state, its secret.
    let template = read("systemd/wemeet-archiver@.service");
    for needed in [
        "--config /etc/wemeet-archiver/%i.toml",
        "StateDirectory=wemeet-archiver/%i\n",
        "LoadCredential=wemeet-secret-key:/etc/wemeet-archiver/%i/secret_key\n",
    ] {
        assert!(template.contains(needed), "the template lacks {needed:?}");
    }
    // The user the units run as is the one sysusers.d creates.
    let sysusers = read("systemd/wemeet-archiver.sysusers");
    assert!(
        sysusers
            .lines()
            .any(|l| l.starts_with("u wemeet-archiver ")),
        "{sysusers}"
    );
}

#[test]
#[ignore = "needs systemd-analyze (apt-get install systemd)"]
fn both_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let mut copies = Vec::new();
    for path in UNITS {
        // Point ExecStart at the binary under test: verify checks that it exists.
        let unit = read(path).replace(
            "/usr/bin/wemeet-archiver",
            env!("CARGO_BIN_EXE_wemeet-archiver"),
        );
        let copy = dir.path().join(Path::new(path).file_name().unwrap());
        std::fs::write(&copy, unit).unwrap();
        copies.push(copy);
    }
    // The man page the units name is not installed here (.ci/run checks the package's).
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&copies)
        .output()
        .expect("systemd-analyze runs (apt-get install systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}

/// The commands `--help` lists (not `help` itself).
fn commands() -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wemeet-archiver"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let list = help
        .split("Commands:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_else(|| panic!("no command list in {help}"));
    list.lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// The long options `wemeet-archiver ARGS --help` lists.
fn long_options(args: &[&str]) -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wemeet-archiver"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}");
    let help = String::from_utf8(out.stdout).unwrap();
    let options = regex::Regex::new(r"(?m)^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)").unwrap();
    options
        .captures_iter(&help)
        .map(|c| c[1].to_string())
        .collect()
}

#[tokio::test]
async fn the_man_pages_and_completions_follow_the_help() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_binary(&["generate-assets", dir.path().to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let commands = commands();
    assert!(commands.len() >= 6, "{commands:?}");
    let bash =
        std::fs::read_to_string(dir.path().join("completions/wemeet-archiver.bash")).unwrap();
    let zsh = std::fs::read_to_string(dir.path().join("completions/_wemeet-archiver")).unwrap();
    let fish =
        std::fs::read_to_string(dir.path().join("completions/wemeet-archiver.fish")).unwrap();
    let main_page = std::fs::read_to_string(dir.path().join("man/wemeet-archiver.1")).unwrap();
    for option in long_options(&[]) {
        assert!(
            main_page.contains(&roff(&option)),
            "wemeet-archiver.1 lacks {option}"
        );
    }
    for command in &commands {
        let page = dir.path().join(format!("man/wemeet-archiver-{command}.1"));
        let page =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            main_page.contains(&roff(&format!("wemeet-archiver-{command}(1)"))),
            "wemeet-archiver.1 does not name {command}"
        );
        for completion in [&bash, &zsh, &fish] {
            assert!(
                completion.contains(command.as_str()),
                "no {command} in a completion"
            );
        }
        for option in long_options(&[command]) {
            assert!(
                page.contains(&roff(&option)),
                "wemeet-archiver-{command}.1 lacks {option}"
            );
            let bare = option.trim_start_matches('-');
            assert!(
                bash.contains(&option),
                "bash completion lacks {command} {option}"
            );
            assert!(
                zsh.contains(&option),
                "zsh completion lacks {command} {option}"
            );
            assert!(
                fish.contains(&format!("-l {bare}")),
                "fish completion lacks {command} {option}"
            );
        }
    }
    // The packaging tool is no command of the archiver.
    assert!(!commands.iter().any(|c| c == "generate-assets"));
    assert!(!bash.contains("generate-assets") && !main_page.contains(&roff("generate-assets")));
    // The bash completion is valid bash (zsh and fish may not be installed).
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(dir.path().join("completions/wemeet-archiver.bash"))
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{syntax:?}");
}

/// `text` as clap_mangen writes it in roff: every `-` escaped.
fn roff(text: &str) -> String {
    text.replace('-', "\\-")
}

/// Every metric name the scrape declares: each `# TYPE` family with the names of its
/// samples (a counter's `_total`, a histogram's `_bucket`, `_sum`, `_count`), so that a
/// family with no sample yet (no rejected webhook request so far) still counts.
fn exported_names(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut parts = declared.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_string());
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// The service with every optional metric on (webhook, scrub, prune rounds), scraped once
/// each has appeared: every `wemeet_*` name of the alert rules and of the dashboard must
/// be one it exports.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_the_alert_rules_and_dashboard_name_is_exported() {
    let sim = start_sim(transcoded(2, 1)).await;
    let (metrics_listener, webhook_listener) = (local_listener().await, local_listener().await);
    let (metrics, webhook) = (port_of(&metrics_listener), port_of(&webhook_listener));
    let archiver = Archiver::new(
        &sim,
        &format!(
            "\n[poll]\ninterval = \"10m\"\nlookback = \"2d\"\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\
             [verify]\ninterval = \"1s\""
        ),
    );
    add_prune_table(&archiver.config, "enabled = true\ninterval = \"1s\"");
    add_webhook_table(&archiver.config, webhook);
    let listeners = wemeet_archiver::Listeners {
        metrics: Some(metrics_listener),
        webhook: Some(webhook_listener),
    };
    let (cancel, daemon) = run_in_process(&archiver.config, None, listeners).await;
    // A request without a signature: the rejections by reason exist once one happened.
    let unsigned = wait_until(
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || match reqwest::Client::new()
            .post(format!("http://127.0.0.1:{webhook}/webhook"))
            .body("{}")
            .send()
            .await
        {
            Ok(response) => ControlFlow::Break(response.status()),
            Err(e) => ControlFlow::Continue(format!("the webhook: {e}")),
        },
    )
    .await;
    assert_eq!(unsigned, 401);
    // The audit trail's check is exported once an `audit verify` ran: record one.
    let store = wemeet_archiver::Db::open(&archiver.dir.path().join("state.db"))
        .await
        .unwrap();
    store.record_audit_check(true, 0, None).await.unwrap();

    let url = format!("http://127.0.0.1:{metrics}/metrics");
    let scrape = wait_until(
        Duration::from_secs(60),
        Duration::from_millis(300),
        async || {
            let body = match reqwest::get(&url).await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(e) => return ControlFlow::Continue(format!("{url}: {e}")),
            };
            let all_there = [
                "wemeet_scrub_last_run_timestamp_seconds",
                "wemeet_prune_last_run_timestamp_seconds",
                "wemeet_webhook_events",
                "wemeet_webhook_rejected",
            ]
            .iter()
            .all(|name| body.contains(&format!("# TYPE {name} ")));
            if all_there {
                ControlFlow::Break(body)
            } else {
                ControlFlow::Continue(format!("not every optional metric yet:\n{body}"))
            }
        },
    )
    .await;
    cancel.cancel();
    daemon.await.unwrap();

    let exported = exported_names(&scrape);
    let named = regex::Regex::new(r"\bwemeet_[a-z0-9_]+").unwrap();
    for path in [
        "contrib/prometheus/wemeet-archiver.rules.yml",
        "contrib/prometheus/wemeet-archiver.rules.test.yml",
        "contrib/grafana/wemeet-archiver.json",
    ] {
        let text = read(path);
        let names: BTreeSet<&str> = named.find_iter(&text).map(|m| m.as_str()).collect();
        assert!(!names.is_empty(), "{path} names no metric");
        let unknown: Vec<_> = names.iter().filter(|n| !exported.contains(**n)).collect();
        assert!(
            unknown.is_empty(),
            "{path} names metrics the service does not export: {unknown:?}\nexported: {exported:#?}"
        );
    }
}
