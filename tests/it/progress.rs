//! What a person reads: a progress display on a terminal and only there (logs that go to a
//! file or a pipe stay JSON lines), and sizes and durations in words in `status` and the
//! summaries, the exact numbers staying in `--json`.

use crate::common::*;
use std::process::Output;

/// Every file of [`dataset`]: three meetings of one file each, 3.7 MB in all.
const SIZE: u64 = 1_234_567;
const DAYS: u32 = 5;

fn dataset() -> wemeet_sim::SimConfig {
    transcoded(3, DAYS).files(1..=1, SIZE, SIZE)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Standard error holds JSON log lines and nothing else: no bar, no escape code, no
/// carriage return, none of the display's lines.
fn assert_only_json_logs(out: &Output) {
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains('\x1b') && !stderr.contains('\r'),
        "{stderr:?}"
    );
    for line in stderr.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not a JSON log line: {line:?}"
        );
    }
    assert!(!stderr.contains("calls in the last minute"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_terminal_there_is_no_progress_display_and_logs_stay_json() {
    let sim = start_sim(dataset()).await;
    assert_eq!(sim.manifest().len(), 3);
    let archiver = Archiver::new(&sim, "");
    let config = &archiver.config;
    let out = run_backfill(config, DAYS, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_only_json_logs(&out);
    let summary = text(&out.stdout);
    assert!(
        summary.starts_with(
            "listed 1 window(s), 3 meeting(s); archived 3 file(s), 3.7 MB in this run, in "
        ),
        "{summary}"
    );

    let out = run_configured(config, &["verify"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_only_json_logs(&out);
    assert!(
        text(&out.stdout).starts_with("checked 3 archived file(s), 3.7 MB, in "),
        "{}",
        text(&out.stdout)
    );

    // --no-progress is accepted by both (and changes nothing here).
    let out = run_backfill(config, DAYS, &["--no-progress"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_only_json_logs(&out);
    assert!(
        text(&out.stdout).contains("archived 0 file(s), 0 B in this run"),
        "{}",
        text(&out.stdout)
    );
    let out = run_configured(config, &["verify", "--no-progress"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_only_json_logs(&out);
}

/// What the binary run with `args` on a pseudo-terminal (`script` from util-linux gives it
/// one) puts on that terminal, standard output and error together; it must exit 0.
async fn on_a_terminal(archiver: &Archiver, args: &[String]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut command = vec![
        quote(env!("CARGO_BIN_EXE_wemeet-archiver")),
        "--config".into(),
        quote(archiver.config.to_str().unwrap()),
    ];
    command.extend(args.iter().map(|a| quote(a)));
    let out = tokio::process::Command::new("script")
        .args([
            "--quiet",
            "--return",
            "--command",
            &command.join(" "),
            "/dev/null",
        ])
        .env_remove("WEMEET_SECRET_KEY")
        .env_remove("WEMEET_SECRET_ID")
        .env_remove("WEMEET_ARCHIVER_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("script(1) runs");
    let screen = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    screen
}

/// indicatif erases each line of the display before it redraws or clears it.
const ERASE_LINE: &str = "\x1b[2K";

#[ignore = "needs script(1) (util-linux) for a terminal"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_terminal_backfill_and_verify_draw_their_progress_unless_told_not_to() {
    let sim = start_sim(dataset()).await;
    let archiver = Archiver::new(&sim, "");
    let screen = on_a_terminal(&archiver, &backfill_args(DAYS, &[])).await;
    for line in [
        "listing  ",
        "files    ",
        "bytes    ",
        "calls in the last minute",
        ERASE_LINE,
    ] {
        assert!(screen.contains(line), "{line:?} not drawn: {screen:?}");
    }
    // Logs as text on a terminal, above the display; the summary last, on its own.
    assert!(screen.contains("window listed"), "{screen:?}");
    let summary = screen.trim_end().rsplit('\n').next().unwrap();
    assert!(
        summary.contains("archived 3 file(s), 3.7 MB in this run, in "),
        "{summary:?}"
    );
    assert_archive_matches(&archiver.archive(), &sim.manifest());

    let screen = on_a_terminal(&archiver, &["verify".into()]).await;
    assert!(screen.contains("verify   "), "{screen:?}");
    assert!(screen.contains(ERASE_LINE), "{screen:?}");
    assert!(
        screen.contains("checked 3 archived file(s), 3.7 MB, in "),
        "{screen:?}"
    );

    // --no-progress: the logs and the summary, no display.
    for args in [
        backfill_args(DAYS, &["--no-progress"]),
        vec!["verify".into(), "--no-progress".into()],
    ] {
        let screen = on_a_terminal(&archiver, &args).await;
        for drawn in [ERASE_LINE, "calls in the last minute", "verify   ", "%  "] {
            assert!(!screen.contains(drawn), "{drawn:?} drawn: {screen:?}");
        }
        assert!(screen.contains("INFO"), "{screen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_text_gives_sizes_and_times_in_words_and_json_the_exact_numbers() {
    let sim = start_sim(dataset()).await;
    let archiver = Archiver::new(&sim, "");
    archiver.backfill_all(DAYS).await;

    let out = run_configured(&archiver.config, &["status"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let status = text(&out.stdout);
    for line in [
        "archived: 3.7 MB; still to download: 0 B\n",
        "deleted in the cloud: 0 archived file(s), 0 B freed (prune.enabled is off)\n",
    ] {
        assert!(status.contains(line), "{line:?} not in {status}");
    }
    let listed = status
        .lines()
        .find(|l| l.starts_with("windows listed: 1, the last "))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(listed.contains(" ago (20"), "{listed}");

    let out = run_configured(&archiver.config, &["status", "--json"], &[]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["bytes_archived"].as_u64(), Some(3 * SIZE));
    assert_eq!(json["bytes_pending"].as_u64(), Some(0));
}
