//! Bench-only: a local S3-compatible server (`s3s-fs`, the one the integration tests use:
//! a directory served over the S3 protocol with SigV4 authentication), so that uploads of
//! the archiver and of `aws s3 cp` / `rclone` can be compared against the same server.
//!
//! ```text
//! cargo bench --bench s3_server -- --listen 127.0.0.1:PORT --root DIR \
//!     --access-key KEY --secret-key SECRET --bucket NAME
//! ```
//!
//! Serves until SIGINT or SIGTERM. Loopback only: it is a test tool.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line program: it prints its address

use std::path::PathBuf;

// The tests' way of serving s3s-fs, so that the bench measures the same server.
#[path = "../tests/it/s3/serve.rs"]
mod serve;

struct Args {
    listen: String,
    root: PathBuf,
    access_key: String,
    secret_key: String,
    bucket: String,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = "127.0.0.1:0".to_string();
    let mut root = None;
    let mut access_key = None;
    let mut secret_key = None;
    let mut bucket = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value()?,
            "--root" => root = Some(PathBuf::from(value()?)),
            "--access-key" => access_key = Some(value()?),
            "--secret-key" => secret_key = Some(value()?),
            "--bucket" => bucket = Some(value()?),
            "--bench" => {}
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Args {
        listen,
        root: root.ok_or("--root DIR is required")?,
        access_key: access_key.ok_or("--access-key is required")?,
        secret_key: secret_key.ok_or("--secret-key is required")?,
        bucket: bucket.ok_or("--bucket is required")?,
    })
}

async fn serve(args: Args) -> Result<(), String> {
    std::fs::create_dir_all(args.root.join(&args.bucket)).map_err(|e| e.to_string())?;
    let fs = s3s_fs::FileSystem::new(&args.root).map_err(|e| format!("{e:?}"))?;
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(
        args.access_key.as_str(),
        args.secret_key.as_str(),
    ));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    println!(
        "s3 server listening on http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let accept = serve::accept(listener, service);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        () = accept => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("s3_server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(serve(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3_server: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
