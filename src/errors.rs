//! Errors keep their cause as `source()`, not in their message; this writes the whole
//! chain for a log line (`anyhow` does it for the command line's last word).

use std::error::Error;

/// `error: cause: cause of the cause`, as one line.
pub fn chain(error: &dyn Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        // A wrapper that repeats its cause's words adds nothing.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot write the report")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause_once() {
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(super::chain(&e), "cannot write the report: disk full");
    }
}
