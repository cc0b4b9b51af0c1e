//! Where a recording lives in the archive, and how hostile names are made safe.
//!
//! `{YYYY}/{MM}/{DD}/{meeting_code}-{subject}/{record_file_id}.mp4`, the date being that of
//! `media_start_time` in the configured time zone. Subjects are typed by meeting hosts, so
//! they may hold anything: `../../etc/passwd`, separators, NUL, newlines, 300 characters.
//! Every component is sanitised here, and [`resolve`] refuses any relative path that is not
//! made of plain components, so nothing can be written outside the archive root.

use chrono::TimeZone;
use std::path::{Component, Path, PathBuf};

/// Longest subject part of a folder name, in bytes (names are limited to 255 bytes on most
/// file systems; the meeting code and a `.part` suffix must still fit).
pub const MAX_SUBJECT_BYTES: usize = 100;
/// Longest id component (ids are digits in practice; this only bounds hostile input).
const MAX_ID_BYTES: usize = 64;

/// Names Windows (and SMB shares it serves) refuses as file names, whatever the extension.
const RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Makes `raw` safe as one path component of at most `max_bytes` bytes; `None` if nothing
/// usable is left.
pub fn safe_component(raw: &str, max_bytes: usize) -> Option<String> {
    let mapped: String = raw
        .chars()
        .map(|c| match c {
            '/' | '\\' | '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    let mut s = mapped;
    while s.contains("..") {
        s = s.replace("..", "_");
    }
    let s = s.trim_start_matches(['.', ' ']);
    let mut out = String::new();
    for c in s.chars() {
        if out.len() + c.len_utf8() > max_bytes {
            break;
        }
        out.push(c);
    }
    let out = out.trim_end_matches(['.', ' ']).to_string();
    if out.is_empty() {
        return None;
    }
    let stem = out
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    if RESERVED.contains(&stem.as_str()) {
        return Some(format!("{out}_"));
    }
    Some(out)
}

/// The folder of a meeting, relative to the archive root, `/`-separated.
pub fn meeting_dir(
    tz: chrono_tz::Tz,
    media_start_time_ms: i64,
    meeting_code: &str,
    subject: &str,
    meeting_id: &str,
) -> String {
    let when = tz
        .timestamp_millis_opt(media_start_time_ms)
        .single()
        .unwrap_or_else(|| tz.timestamp_millis_opt(0).unwrap());
    let fallback_id = safe_component(meeting_id, MAX_ID_BYTES).unwrap_or_else(|| "meeting".into());
    let code = safe_component(meeting_code, MAX_ID_BYTES).unwrap_or_else(|| fallback_id.clone());
    let subject = safe_component(subject, MAX_SUBJECT_BYTES).unwrap_or(fallback_id);
    format!("{}/{code}-{subject}", when.format("%Y/%m/%d"))
}

/// The file of a recording, relative to the archive root.
pub fn file_path(dir: &str, record_file_id: &str) -> String {
    let id = safe_component(record_file_id, MAX_ID_BYTES).unwrap_or_else(|| "recording".into());
    format!("{dir}/{id}.mp4")
}

/// Longest file-type part of an artifact's name (`pdf`, `docx`: this only bounds hostile
/// input).
const MAX_TYPE_BYTES: usize = 10;

/// A file type as the API gave it (`txt`, `PDF`, `docs`...), made one safe lowercase word.
/// The page writes `docs` for Word files: they are named `.docx`, as a Word file is.
fn safe_type(file_type: &str) -> String {
    let t: String = file_type
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(MAX_TYPE_BYTES)
        .collect::<String>()
        .to_ascii_lowercase();
    match t.as_str() {
        "" => "bin".into(),
        "docs" => "docx".into(),
        _ => t,
    }
}

/// What an artifact is, for its key and its name: the audio track, or the `nth` (from 1)
/// transcript of its `file_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact<'a> {
    Audio,
    Transcript { file_type: &'a str, nth: usize },
}

/// The key of an artifact's row, derived from its video's record_file_id:
/// `{id}/audio`, `{id}/transcript/{type}`, `{id}/transcript/{type}/2`, ...
pub fn artifact_key(video_id: &str, artifact: Artifact<'_>) -> String {
    match artifact {
        Artifact::Audio => format!("{video_id}/audio"),
        Artifact::Transcript { file_type, nth: 1 } => {
            format!("{video_id}/transcript/{}", safe_type(file_type))
        }
        Artifact::Transcript { file_type, nth } => {
            format!("{video_id}/transcript/{}/{nth}", safe_type(file_type))
        }
    }
}

/// An artifact's file, beside its video in `dir`: `{id}.m4a`, `{id}.transcript.{type}`, and
/// `{id}.transcript.2.{type}` for a second transcript of the same type.
pub fn artifact_path(dir: &str, video_id: &str, artifact: Artifact<'_>) -> String {
    let id = safe_component(video_id, MAX_ID_BYTES).unwrap_or_else(|| "recording".into());
    match artifact {
        Artifact::Audio => format!("{dir}/{id}.m4a"),
        Artifact::Transcript { file_type, nth: 1 } => {
            format!("{dir}/{id}.transcript.{}", safe_type(file_type))
        }
        Artifact::Transcript { file_type, nth } => {
            format!("{dir}/{id}.transcript.{nth}.{}", safe_type(file_type))
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("refusing path `{0}`: it is not a plain relative path inside the archive")]
pub struct UnsafePath(pub String);

/// Joins a stored relative path to the root, refusing anything that could escape it.
pub fn resolve(root: &Path, relative: &str) -> Result<PathBuf, UnsafePath> {
    let rel = Path::new(relative);
    let plain = !relative.is_empty()
        && !relative.contains('\0')
        && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if plain {
        Ok(root.join(rel))
    } else {
        Err(UnsafePath(relative.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(subject: &str) -> String {
        meeting_dir(
            chrono_tz::Asia::Shanghai,
            1613738006000,
            "29858611111",
            subject,
            "6249",
        )
    }

    fn subject_part(subject: &str) -> String {
        let d = dir(subject);
        let last = d.rsplit('/').next().unwrap();
        last.strip_prefix("29858611111-").unwrap().to_string()
    }

    #[test]
    fn date_folder_uses_the_configured_time_zone() {
        // 2021-02-19 12:33:26 UTC is 20:33 in Shanghai, 07:33 in New York
        assert!(dir("x").starts_with("2021/02/19/"));
        let ny = meeting_dir(chrono_tz::America::New_York, 1613692800000, "1", "x", "m");
        assert!(ny.starts_with("2021/02/18/"), "{ny}");
    }

    #[test]
    fn hostile_subjects_stay_one_plain_component() {
        let cases = [
            "../../etc/passwd",
            "a/b\\c",
            "CON",
            "line1\nline2",
            "a\0b",
            "..",
            ".hidden",
            "trailing. ",
            "周会 🎉🚀",
        ];
        let root = Path::new("/archive");
        for s in cases {
            let part = subject_part(s);
            assert!(
                !part.contains('/') && !part.contains('\\') && !part.contains(".."),
                "{s:?} -> {part:?}"
            );
            assert!(!part.chars().any(char::is_control), "{s:?} -> {part:?}");
            assert!(!part.starts_with('.') && !part.ends_with('.') && !part.ends_with(' '));
            let path = resolve(root, &file_path(&dir(s), "123")).unwrap();
            assert!(path.starts_with(root));
            assert_eq!(path.components().count(), 7, "{path:?}"); // / archive Y M D dir file
        }
        assert_eq!(subject_part("周会 🎉🚀"), "周会 🎉🚀");
        assert_eq!(safe_component("CON", 100).unwrap(), "CON_");
        assert_eq!(safe_component("con.txt", 100).unwrap(), "con.txt_");
    }

    #[test]
    fn long_subjects_are_cut_on_a_character_boundary() {
        let long = "会".repeat(300);
        let part = subject_part(&long);
        assert!(part.len() <= MAX_SUBJECT_BYTES);
        assert_eq!(part, "会".repeat(MAX_SUBJECT_BYTES / 3));
    }

    #[test]
    fn empty_subject_falls_back_to_the_meeting_id() {
        assert_eq!(subject_part(""), "6249");
        assert_eq!(subject_part(" . "), "6249");
    }

    #[test]
    fn artifacts_live_beside_their_video_under_safe_names() {
        let d = "2024/01/02/1-x";
        assert_eq!(
            artifact_path(d, "9", Artifact::Audio),
            "2024/01/02/1-x/9.m4a"
        );
        let t = |file_type, nth| Artifact::Transcript { file_type, nth };
        assert_eq!(
            artifact_path(d, "9", t("txt", 1)),
            "2024/01/02/1-x/9.transcript.txt"
        );
        assert_eq!(
            artifact_path(d, "9", t("PDF", 2)),
            "2024/01/02/1-x/9.transcript.2.pdf"
        );
        assert_eq!(
            artifact_path(d, "9", t("../../x/../docx", 1)),
            "2024/01/02/1-x/9.transcript.xdocx"
        );
        assert_eq!(
            artifact_path(d, "9", t("", 1)),
            "2024/01/02/1-x/9.transcript.bin"
        );
        assert_eq!(artifact_key("9", Artifact::Audio), "9/audio");
        assert_eq!(artifact_key("9", t("docs", 1)), "9/transcript/docx");
        assert_eq!(artifact_key("9", t("docs", 3)), "9/transcript/docx/3");
        assert_eq!(
            artifact_path(d, "9", t("docs", 1)),
            "2024/01/02/1-x/9.transcript.docx"
        );
        for nth in 1..3 {
            assert!(resolve(Path::new("/a"), &artifact_path(d, "9", t("../..", nth))).is_ok());
        }
    }

    #[test]
    fn resolve_refuses_escapes() {
        let root = Path::new("/archive");
        for bad in ["../x", "/etc/passwd", "a/../../b", "", "a\0b"] {
            assert!(resolve(root, bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            resolve(root, "2024/01/02/x/y.mp4").unwrap(),
            root.join("2024/01/02/x/y.mp4")
        );
    }
}
