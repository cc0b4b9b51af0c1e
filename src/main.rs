fn main() -> std::process::ExitCode {
    wemeet_archiver::cli::main()
}
