//! The `wemeet-archiver` binary: the command line over the library. Arguments, rendering
//! of reports, exit codes and signals live here (`cli/`); the library returns reports
//! and typed errors and never prints.

mod cli;

fn main() -> std::process::ExitCode {
    one_malloc_arena();
    cli::main()
}

/// Holds the process to one glibc malloc arena, unless `MALLOC_ARENA_MAX` says otherwise.
///
/// glibc gives every thread that allocates an arena of its own, up to eight per core, and
/// memory freed in one is not reused by the others. The archiver's threads (a disk writer
/// per transfer, one per SQLite connection, tokio's workers) each took one, so a backfill's
/// peak RSS grew with how long it ran: 1.33× from 1k to 100k recordings, while the live heap
/// stayed near 6 MB (heaptrack; bench/NOTES.md, "Growth"). One arena holds it to 1.11× for
/// the same CPU: the archiver's time goes to I/O and hashing, not to `malloc`'s lock. Ruby
/// sets this for the same reason. The setting only gates arenas not yet created, so it must
/// run first, while the main thread is the only one.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // the one `unsafe` of the workspace (see Cargo.toml's [workspace.lints])
fn one_malloc_arena() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` only sets a tunable of glibc's allocator, here with a valid
        // parameter and value, before any other thread exists (the first line of `main`).
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    }
}

/// Other C libraries have their own allocators and their own answers.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}
