//! The `wemeet-archiver` binary: the command line over the library. Arguments, rendering
//! of reports, exit codes and signals live here (`cli/`); the library returns reports
//! and typed errors and never prints.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
