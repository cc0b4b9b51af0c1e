//! `wemeet-archiver generate-assets DIR`: the man pages and the shell completions the
//! Debian package ships, written from the very clap definitions that parse the command
//! line. The package is built from the binary it packages (`.ci/run`: build, run this,
//! `cargo deb --no-build`), so its man page can never disagree with `--help`, and no build
//! script slows every build to write them.
//!
//! It is a tool of the packaging, not a command of the archiver: it is recognised before
//! [`super::Cli`] parses anything, so it appears in no `--help`, man page or completion
//! (clap's completion generators list even hidden subcommands).

use super::exit::Exit;
use clap::{CommandFactory, Parser};
use clap_complete::Shell;
use std::path::{Path, PathBuf};

/// The first argument that asks for the assets instead of a command of [`super::Cli`].
const NAME: &str = "generate-assets";

/// Where each shell's completion file goes under `DIR/completions/`, named as each shell
/// looks for it (the package installs them under these names).
const COMPLETIONS: [(Shell, &str); 3] = [
    (Shell::Bash, "wemeet-archiver.bash"),
    (Shell::Zsh, "_wemeet-archiver"),
    (Shell::Fish, "wemeet-archiver.fish"),
];

/// Write the man pages into DIR/man and the shell completions (bash, zsh, fish) into
/// DIR/completions, for the Debian package (see .ci/run).
#[derive(Debug, Parser)]
struct Args {
    /// Directory to write into (created if missing).
    dir: PathBuf,
}

/// `Some(exit)` when the process was started as `wemeet-archiver generate-assets ...`:
/// the assets were written (0), or could not be (2, naming the directory).
pub fn requested() -> Option<Exit> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != NAME {
        return None;
    }
    let parsed =
        Args::parse_from(std::iter::once("wemeet-archiver generate-assets".into()).chain(args));
    Some(match generate(&parsed.dir) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!(
                "error: cannot write the assets into {}: {e}",
                parsed.dir.display()
            );
            Exit::Usage
        }
    })
}

/// Writes `dir/man/wemeet-archiver.1` (and a page per command,
/// `wemeet-archiver-verify.1`, ...) and `dir/completions/*`.
fn generate(dir: &Path) -> std::io::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    clap_mangen::generate_to(super::Cli::command(), &man)?;
    for (shell, name) in COMPLETIONS {
        let mut text = Vec::new();
        clap_complete::generate(
            shell,
            &mut super::Cli::command(),
            "wemeet-archiver",
            &mut text,
        );
        std::fs::write(completions.join(name), text)?;
    }
    Ok(())
}
