//! The progress display of `backfill` and `verify` on a terminal: the library's
//! [`Progress`] counters, what the store says is left to download, and the listing's call
//! budget, redrawn a few times a second with indicatif below the log lines, which
//! [`Above`] prints above the display, never through it.
//!
//! It is shown only when standard error is a terminal and `--no-progress` is not given
//! (`wants`): under systemd, cron or a pipe, standard error holds log lines and nothing
//! else.

use super::human::{Size, Span};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use wemeet_archiver::Budgets;
use wemeet_archiver::{Db, ToDo};
use wemeet_archiver::{Progress, Snapshot};

/// How often the display is redrawn (and the store asked what is left).
const TICK: Duration = Duration::from_millis(250);
/// The current rate is measured over this much recent time.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Transfers of at least this much (one default checkpoint) get a line of their own:
/// smaller ones are over before anyone could read it.
const LARGE: u64 = 16 * 1024 * 1024;
/// At most this many transfer lines, so the display fits a terminal.
const MAX_TRANSFER_LINES: usize = 8;

/// Whether to draw the display: asked for, and standard error is a terminal.
pub fn wants(asked: bool) -> bool {
    asked && std::io::stderr().is_terminal()
}

/// What a job's display shows besides its counters.
pub enum Job {
    /// The listing's and the transfers' call budgets (and their limits), and the store
    /// for what is left to download.
    Backfill {
        store: Db,
        budgets: Budgets,
        listing_limit: u32,
        addresses_limit: u32,
    },
    /// `verify` plans its work up front: its counters say everything.
    Verify,
    /// `reindex` plans the `meeting.json` files it reads once it has listed the archive.
    Reindex,
    /// `export` too: the files and bytes it copies.
    Export,
}

/// A display being drawn; [`Display::finish`] takes it off the terminal.
pub struct Display {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Display {
    /// Draws `progress` for `job` into `multi` until [`Display::finish`].
    pub fn start(multi: &MultiProgress, progress: Progress, job: Job) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(draw(multi.clone(), progress, job, stop.clone()));
        Self { stop, task }
    }

    /// Stops drawing and clears the display, so that the summary printed next stands alone.
    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Redraws every [`TICK`] until `stop`, then clears. The whole display is one message of
/// one bar, so that each redraw is one write of a consistent frame (bars of their own
/// would each redraw on every change, and the terminal's rate limit would drop some).
async fn draw(multi: MultiProgress, progress: Progress, job: Job, stop: CancellationToken) {
    let style = ProgressStyle::with_template("{msg}").expect("the template is valid");
    let screen = multi.add(ProgressBar::new(0).with_style(style));
    let mut rate = Rate::default();
    let mut to_do = None;
    let mut tick = tokio::time::interval(TICK);
    loop {
        // The tick first: the first one is at once, so even a job over before this task
        // ran shows a frame.
        tokio::select! {
            biased;
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        let snap = progress.snapshot();
        let per_sec = rate.sample(Instant::now(), snap.bytes_done);
        let frame = match &job {
            Job::Backfill {
                store,
                budgets,
                listing_limit,
                addresses_limit,
            } => {
                // A failed look keeps the last answer: the display is no place for errors.
                to_do = store.to_do().await.ok().or(to_do);
                let calls = Calls {
                    listing: (budgets.records.used(), *listing_limit),
                    addresses: (budgets.addresses.used(), *addresses_limit),
                };
                backfill_frame(&snap, to_do.unwrap_or_default(), calls, per_sec)
            }
            Job::Verify => verify_frame(&snap, per_sec),
            Job::Reindex => reindex_frame(&snap),
            Job::Export => export_frame(&snap, per_sec),
        };
        let mut lines = frame.text;
        lines.push(format!(
            "{}  {}",
            gauge(frame.total.0, frame.total.1, 40),
            frame.total_text
        ));
        lines.extend(transfer_lines(&snap));
        screen.set_message(lines.join("\n"));
    }
    screen.finish_and_clear();
    multi.remove(&screen);
}

/// `[=========>          ]  45%`: `done` of `of` in `width` characters.
fn gauge(done: u64, of: u64, width: usize) -> String {
    let share = if of == 0 {
        0.0
    } else {
        (done.min(of) as f64 / of as f64).clamp(0.0, 1.0)
    };
    let full = (share * width as f64) as usize;
    let head = usize::from(full < width && done > 0);
    let rest = width - full - head;
    format!(
        "[{}{}{}] {:>3}%",
        "=".repeat(full),
        ">".repeat(head),
        " ".repeat(rest),
        (share * 100.0) as u32
    )
}

/// A line per large transfer in flight, in the order they started.
fn transfer_lines(snap: &Snapshot) -> Vec<String> {
    snap.transfers
        .iter()
        .filter(|t| t.size >= LARGE)
        .take(MAX_TRANSFER_LINES)
        .map(|t| {
            format!(
                "  {}  {} of {}  {}",
                gauge(t.received, t.size, 20),
                Size(t.received),
                Size(t.size),
                t.path
            )
        })
        .collect()
}

/// Calls spent in the current minute, and the limit, of the two budgets a backfill uses.
#[derive(Debug, Clone, Copy)]
struct Calls {
    listing: (usize, u32),
    addresses: (usize, u32),
}

/// What one redraw shows: lines of text, then a bar (done, of) with its caption.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    text: Vec<String>,
    total: (u64, u64),
    total_text: String,
}

/// `41.2 MB/s, ETA 53 s`, or what is known of it.
fn speed(per_sec: Option<f64>, left: u64) -> String {
    match per_sec {
        None => "measuring the rate".into(),
        Some(r) if r < 1.0 => "stalled".into(),
        Some(r) => {
            let rate = format!("{}/s", Size(r as u64));
            if left == 0 {
                rate
            } else {
                let eta = Duration::try_from_secs_f64(left as f64 / r).unwrap_or(Duration::MAX);
                format!("{rate}, ETA {}", Span(eta))
            }
        }
    }
}

fn backfill_frame(snap: &Snapshot, to_do: ToDo, calls: Calls, per_sec: Option<f64>) -> Frame {
    // Before the listing starts, nothing is known to be left.
    let listing_done = snap.windows > 0 && snap.windows_done >= snap.windows;
    let so_far = if listing_done { "" } else { " so far" };
    let left = u64::try_from(to_do.bytes).unwrap_or(0);
    let listing = match snap.windows {
        0 => "listing  starting".to_string(),
        n => format!(
            "listing  {} of {n} window(s), {} page(s); {} of {} calls in the last minute",
            snap.windows_done, snap.pages, calls.listing.0, calls.listing.1,
        ),
    };
    let files = format!(
        "files    {} archived, {} to do{so_far}; {} of {} address calls in the last minute",
        snap.files_done, to_do.files, calls.addresses.0, calls.addresses.1
    );
    let bytes = format!(
        "bytes    {} received, {} to do{so_far}; {}",
        Size(snap.bytes_done),
        Size(left),
        speed(per_sec, left)
    );
    let of = snap.bytes_done + left;
    Frame {
        text: vec![listing, files, bytes],
        // Nothing known yet is not all done.
        total: (snap.bytes_done, of.max(1)),
        total_text: format!(
            "{} of {}",
            Size(snap.bytes_done),
            Size(snap.bytes_done + left)
        ),
    }
}

fn export_frame(snap: &Snapshot, per_sec: Option<f64>) -> Frame {
    let line = match snap.planned {
        None => "export   selecting the recordings".to_string(),
        Some(p) => format!(
            "export   {} of {} file(s) copied and checked, {} of {}; {}",
            snap.files_done,
            p.files,
            Size(snap.bytes_done),
            Size(p.bytes),
            speed(per_sec, p.bytes.saturating_sub(snap.bytes_done))
        ),
    };
    bytes_frame(line, snap)
}

/// One line of text above a bar of the bytes done against those planned.
fn bytes_frame(line: String, snap: &Snapshot) -> Frame {
    let planned = snap.planned.unwrap_or_default();
    Frame {
        text: vec![line],
        // Nothing planned yet is not all done.
        total: match snap.planned {
            None => (0, 1),
            Some(p) => (snap.bytes_done.min(p.bytes), p.bytes),
        },
        total_text: format!("{} of {}", Size(snap.bytes_done), Size(planned.bytes)),
    }
}

fn verify_frame(snap: &Snapshot, per_sec: Option<f64>) -> Frame {
    let planned = snap.planned.unwrap_or_default();
    let left = planned.bytes.saturating_sub(snap.bytes_done);
    let line = if snap.planned.is_none() {
        "verify   reading the database".to_string()
    } else if snap.files_done >= planned.files {
        format!(
            "verify   {} file(s) re-read; looking for files the database does not know",
            snap.files_done
        )
    } else {
        format!(
            "verify   {} of {} file(s) re-read, {} of {}; {}",
            snap.files_done,
            planned.files,
            Size(snap.bytes_done),
            Size(planned.bytes),
            speed(per_sec, left)
        )
    };
    bytes_frame(line, snap)
}

fn reindex_frame(snap: &Snapshot) -> Frame {
    let line = match snap.planned {
        None => "reindex  listing the archive".to_string(),
        Some(p) => format!(
            "reindex  {} of {} meeting.json read and recorded",
            snap.files_done, p.files
        ),
    };
    Frame {
        text: vec![line],
        total: match snap.planned {
            None => (0, 1),
            Some(p) => (snap.files_done.min(p.files), p.files),
        },
        total_text: format!(
            "{} of {} folder(s)",
            snap.files_done,
            snap.planned.unwrap_or_default().files
        ),
    }
}

/// Bytes per second over the last [`RATE_WINDOW`], from samples of a growing count.
#[derive(Debug, Default)]
struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    /// Adds a sample; `None` until the samples span a second.
    fn sample(&mut self, at: Instant, count: u64) -> Option<f64> {
        self.samples.push_back((at, count));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| at.duration_since(*t) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        let (first_at, first) = *self.samples.front()?;
        let span = at.duration_since(first_at);
        (span >= Duration::from_secs(1))
            .then(|| count.saturating_sub(first) as f64 / span.as_secs_f64())
    }
}

/// The log's writer while a display is drawn: each log line is written whole with the
/// display taken off the screen, then the display is drawn again below it.
///
/// Not `tracing-indicatif`: it draws spans as bars, which is not this display, and its
/// writer is this same `suspend` around a write.
#[derive(Clone)]
pub struct Above(pub MultiProgress);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Above {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            multi: self.0.clone(),
            line: Vec::new(),
        }
    }
}

/// One event's text, written when the subscriber is done with it (on drop).
pub struct LogLine {
    multi: MultiProgress,
    line: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.multi.suspend(|| {
                let _ = std::io::stderr().write_all(&self.line);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wemeet_archiver::{Planned, TransferSnapshot};

    const CALLS: Calls = Calls {
        listing: (7, 10),
        addresses: (3, 50),
    };

    #[test]
    fn a_backfill_frame_says_listing_files_bytes_rate_and_eta() {
        let snap = Snapshot {
            windows: 4,
            windows_done: 2,
            pages: 7,
            files_done: 12,
            bytes_done: 1_210_000_000,
            ..Snapshot::default()
        };
        let to_do = ToDo {
            files: 28,
            bytes: 2_190_000_000,
        };
        let frame = backfill_frame(&snap, to_do, CALLS, Some(41_200_000.0));
        assert_eq!(
            frame.text,
            [
                "listing  2 of 4 window(s), 7 page(s); 7 of 10 calls in the last minute",
                "files    12 archived, 28 to do so far; 3 of 50 address calls in the last minute",
                "bytes    1.2 GB received, 2.2 GB to do so far; 41.2 MB/s, ETA 53 s",
            ]
        );
        assert_eq!(frame.total, (1_210_000_000, 3_400_000_000));
        assert_eq!(frame.total_text, "1.2 GB of 3.4 GB");

        // Listed: what is to do is all there is; nothing left, no ETA.
        let listed = Snapshot {
            windows_done: 4,
            ..snap
        };
        let frame = backfill_frame(&listed, ToDo::default(), CALLS, Some(41_200_000.0));
        assert!(
            frame.text[1].starts_with("files    12 archived, 0 to do; "),
            "{frame:?}"
        );
        assert_eq!(
            frame.text[2],
            "bytes    1.2 GB received, 0 B to do; 41.2 MB/s"
        );
        let frame = backfill_frame(&listed, to_do, CALLS, None);
        assert!(frame.text[2].ends_with("; measuring the rate"), "{frame:?}");
        let frame = backfill_frame(&listed, to_do, CALLS, Some(0.0));
        assert!(frame.text[2].ends_with("; stalled"), "{frame:?}");

        let starting = backfill_frame(&Snapshot::default(), ToDo::default(), CALLS, None);
        assert_eq!(starting.text[0], "listing  starting");
        assert!(starting.text[1].contains("0 to do so far"), "{starting:?}");
        assert_eq!(starting.total, (0, 1));
    }

    #[test]
    fn a_verify_frame_counts_against_the_plan() {
        let mut snap = Snapshot::default();
        assert_eq!(
            verify_frame(&snap, None).text,
            ["verify   reading the database"]
        );
        snap.planned = Some(Planned {
            files: 1521,
            bytes: 2_420_000_000,
        });
        snap.files_done = 120;
        snap.bytes_done = 412_000_000;
        let frame = verify_frame(&snap, Some(100_400_000.0));
        assert_eq!(
            frame.text,
            ["verify   120 of 1521 file(s) re-read, 412 MB of 2.4 GB; 100 MB/s, ETA 20 s"]
        );
        assert_eq!(frame.total, (412_000_000, 2_420_000_000));
        snap.files_done = 1521;
        assert!(
            verify_frame(&snap, None).text[0].contains("looking for files the database"),
            "{snap:?}"
        );
    }

    #[test]
    fn the_rate_is_measured_over_the_last_ten_seconds() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut rate = Rate::default();
        assert_eq!(rate.sample(at(0), 0), None);
        assert_eq!(rate.sample(at(500), 50), None);
        assert_eq!(rate.sample(at(1000), 100), Some(100.0));
        // A fast start no longer counts once it is ten seconds old.
        for s in 2..=11 {
            rate.sample(at(s * 1000), 100 + (s - 1) * 10);
        }
        assert_eq!(rate.sample(at(12_000), 210), Some(10.0));
    }

    #[test]
    fn only_large_transfers_get_a_line_with_a_gauge() {
        let transfer = |path: &str, size, received| TransferSnapshot {
            path: path.into(),
            size,
            received,
        };
        let snap = Snapshot {
            transfers: vec![
                transfer("big.mp4", 40_000_000, 18_000_000),
                transfer("small.mp4", LARGE - 1, 0),
            ],
            ..Snapshot::default()
        };
        assert_eq!(
            transfer_lines(&snap),
            ["  [=========>          ]  45%  18.0 MB of 40.0 MB  big.mp4"]
        );
        assert!(transfer_lines(&Snapshot::default()).is_empty());
    }

    #[test]
    fn a_gauge_is_empty_then_full() {
        assert_eq!(gauge(0, 1, 4), "[    ]   0%");
        assert_eq!(gauge(0, 0, 4), "[    ]   0%");
        assert_eq!(gauge(1, 4, 4), "[=>  ]  25%");
        assert_eq!(gauge(5, 4, 4), "[====] 100%");
    }
}
