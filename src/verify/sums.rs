//! `SHA256SUMS` in the exact format of GNU `sha256sum`, so that anyone can check the
//! archive with `cd ROOT && sha256sum -c SHA256SUMS`, without this program.

/// One line of `sha256sum` output (text mode: two spaces). A name holding a backslash,
/// newline or carriage return is escaped as coreutils does (≥ 9.0): the line starts with
/// `\` and those characters become `\\`, `\n` and `\r`, so that every entry stays on one
/// line and reads back as the same name.
pub fn line(sha256_hex: &str, path: &str) -> String {
    let needs_escape = path.contains(['\\', '\n', '\r']);
    let mut out = String::with_capacity(path.len() + sha256_hex.len() + 4);
    if needs_escape {
        out.push('\\');
    }
    out.push_str(sha256_hex);
    out.push_str("  ");
    if needs_escape {
        for c in path.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
    } else {
        out.push_str(path);
    }
    out.push('\n');
    out
}

/// The whole file for `(sha256, path)` entries, sorted by path so that two runs over the
/// same archive write the same bytes (and a `diff` of two manifests means something).
pub fn render<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut entries: Vec<(&str, &str)> = entries.into_iter().collect();
    entries.sort_by(|a, b| a.1.cmp(b.1));
    entries
        .into_iter()
        .map(|(sha, path)| line(sha, path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn plain_names_are_hash_two_spaces_name() {
        assert_eq!(
            line(H, "2024/01/02/1-周会 🎉/9.mp4"),
            format!("{H}  2024/01/02/1-周会 🎉/9.mp4\n")
        );
    }

    #[test]
    fn names_with_newline_or_backslash_are_escaped_like_coreutils() {
        assert_eq!(line(H, "a\nb"), format!("\\{H}  a\\nb\n"));
        assert_eq!(line(H, "a\\b"), format!("\\{H}  a\\\\b\n"));
        assert_eq!(line(H, "a\rb"), format!("\\{H}  a\\rb\n"));
        assert_eq!(line(H, "\\n\n"), format!("\\{H}  \\\\n\\n\n"));
        // Other control characters are kept as they are, as sha256sum does.
        assert_eq!(line(H, "a\tb"), format!("{H}  a\tb\n"));
    }

    #[test]
    fn render_sorts_by_path() {
        let text = render([(H, "b"), (H, "a")]);
        assert_eq!(text, format!("{H}  a\n{H}  b\n"));
        assert_eq!(render([]), "");
    }
}
