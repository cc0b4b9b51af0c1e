//! Where a recording lives in the archive, and how hostile names are made safe.
//!
//! `storage.layout` renders each path from a template; the default is
//! `{YYYY}/{MM}/{DD}/{meeting_code}-{subject}/{record_file_id}.mp4`, the date being that of
//! `media_start_time` in the configured time zone. Subjects are typed by meeting hosts, so
//! they may hold anything: `../../etc/passwd`, separators, NUL, newlines, 300 characters.
//! Every field and every component is sanitised here, and [`resolve`] refuses any relative path that is not
//! made of plain components, so nothing can be written outside the archive root.

use crate::domain::RecordFileId;
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

/// Longest path component a template renders, in bytes: the longest default component
/// (`{meeting_code}-{subject}`, 64 + 1 + 100) fits, and so does a `.transcript.2.docx.part`
/// suffix under the 255 bytes of most file systems.
const MAX_COMPONENT_BYTES: usize = 200;

/// Today's layout, and the default of `storage.layout`: archives written before templates
/// existed stay valid.
pub const DEFAULT_LAYOUT: &str =
    "{start:%Y}/{start:%m}/{start:%d}/{meeting_code}-{subject}/{record_file_id}";

/// A field of `storage.layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    UserId,
    Subject,
    MeetingCode,
    MeetingId,
    MeetingRecordId,
    RecordFileId,
    /// The file's position in its recording, from 1 (by start time).
    Index,
}

impl Field {
    const ALL: [(&'static str, Self); 7] = [
        ("userid", Self::UserId),
        ("subject", Self::Subject),
        ("meeting_code", Self::MeetingCode),
        ("meeting_id", Self::MeetingId),
        ("meeting_record_id", Self::MeetingRecordId),
        ("record_file_id", Self::RecordFileId),
        ("index", Self::Index),
    ];

    /// A file's own field, not its meeting's: allowed only in the file name, so that the
    /// files of one recording share one folder (and its `meeting.json`).
    fn per_file(self) -> bool {
        matches!(self, Self::RecordFileId | Self::Index)
    }
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Field(Field),
    /// `{start:FORMAT}`: the meeting's start in `storage.timezone`, strftime-style.
    Start(String),
}

/// Why a `storage.layout` template is refused; each says what to write instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("`{0}` has an unclosed `{{` or a stray `}}`")]
    Syntax(String),
    #[error(
        "`{{{0}}}` is not a field; use {{userid}}, {{subject}}, {{meeting_code}}, \
         {{meeting_id}}, {{meeting_record_id}}, {{record_file_id}}, {{index}} or {{start:%Y}}"
    )]
    UnknownField(String),
    #[error("`{{start:{0}}}` is not a strftime format; use e.g. {{start:%Y}} or {{start:%H%M}}")]
    BadDate(String),
    #[error("has an empty path component (a leading, trailing or doubled `/`)")]
    EmptyComponent,
    #[error(
        "can map two files to one path: the file name (after the last `/`) needs \
         {{record_file_id}}, or {{index}} with {{meeting_record_id}} somewhere"
    )]
    Collides,
    #[error(
        "puts {{record_file_id}} or {{index}} in a folder: they may only appear in the file \
         name (after the last `/`), so that a recording's files share a folder"
    )]
    PerFileFolder,
}

/// What a template renders of a meeting.
#[derive(Debug, Clone, Copy)]
pub struct MeetingFields<'a> {
    pub userid: &'a str,
    pub subject: &'a str,
    pub meeting_code: &'a str,
    pub meeting_id: &'a str,
    pub meeting_record_id: &'a str,
    pub media_start_time_ms: i64,
}

/// A parsed `storage.layout`: `/`-separated components of literal text and fields; the
/// last is the recording's file name, `.mp4` appended.
#[derive(Debug, Clone)]
pub struct Layout {
    template: String,
    timezone: chrono_tz::Tz,
    folders: Vec<Vec<Piece>>,
    name: Vec<Piece>,
}

impl Layout {
    pub fn parse(template: &str, timezone: chrono_tz::Tz) -> Result<Self, LayoutError> {
        let mut components: Vec<Vec<Piece>> = vec![Vec::new()];
        let mut text = String::new();
        let mut chars = template.chars();
        let flush = |text: &mut String, components: &mut Vec<Vec<Piece>>| {
            if !text.is_empty() {
                let last = components.last_mut().expect("one component at least");
                last.push(Piece::Text(std::mem::take(text)));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '/' => {
                    flush(&mut text, &mut components);
                    components.push(Vec::new());
                }
                '{' => {
                    flush(&mut text, &mut components);
                    let mut inner = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') | None => return Err(LayoutError::Syntax(template.into())),
                            Some(c) => inner.push(c),
                        }
                    }
                    let piece = match inner.split_once(':') {
                        Some(("start", format)) => {
                            let bad = chrono::format::StrftimeItems::new(format)
                                .any(|i| matches!(i, chrono::format::Item::Error));
                            if bad || format.is_empty() {
                                return Err(LayoutError::BadDate(format.into()));
                            }
                            Piece::Start(format.into())
                        }
                        _ => Field::ALL
                            .iter()
                            .find(|(name, _)| *name == inner)
                            .map(|&(_, f)| Piece::Field(f))
                            .ok_or(LayoutError::UnknownField(inner))?,
                    };
                    components.last_mut().expect("one component").push(piece);
                }
                '}' => return Err(LayoutError::Syntax(template.into())),
                c => text.push(c),
            }
        }
        flush(&mut text, &mut components);
        if components.iter().any(Vec::is_empty) {
            return Err(LayoutError::EmptyComponent);
        }
        let name = components.pop().expect("one component at least");
        let has = |pieces: &[Piece], field: Field| {
            pieces
                .iter()
                .any(|p| matches!(p, Piece::Field(f) if *f == field))
        };
        let anywhere = |field| has(&name, field) || components.iter().any(|c| has(c, field));
        let per_file = |pieces: &[Piece]| {
            pieces
                .iter()
                .any(|p| matches!(p, Piece::Field(f) if f.per_file()))
        };
        if components.iter().any(|c| per_file(c)) {
            return Err(LayoutError::PerFileFolder);
        }
        let unique = has(&name, Field::RecordFileId)
            || (has(&name, Field::Index) && anywhere(Field::MeetingRecordId));
        if !unique {
            return Err(LayoutError::Collides);
        }
        Ok(Self {
            template: template.into(),
            timezone,
            folders: components,
            name,
        })
    }

    /// The template as the admin wrote it (what the archive records and compares).
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The folder of a meeting's files, relative to the archive root, `/`-separated.
    pub fn meeting_dir(&self, m: &MeetingFields<'_>) -> String {
        let parts: Vec<String> = self
            .folders
            .iter()
            .map(|c| self.component(c, m, None))
            .collect();
        parts.join("/")
    }

    /// The file of a recording in its meeting's folder `dir`; `index` from 1.
    pub fn file_path(
        &self,
        dir: &str,
        m: &MeetingFields<'_>,
        record_file_id: &str,
        index: usize,
    ) -> String {
        let name = self.component(&self.name, m, Some((record_file_id, index)));
        format!("{dir}/{name}.mp4")
    }

    /// One component: each field made safe on its own (as subjects always were), then the
    /// whole, so that literal text cannot smuggle in `..` or a reserved name either.
    fn component(
        &self,
        pieces: &[Piece],
        m: &MeetingFields<'_>,
        file: Option<(&str, usize)>,
    ) -> String {
        let fallback_id =
            || safe_component(m.meeting_id, MAX_ID_BYTES).unwrap_or_else(|| "meeting".into());
        let id = |raw: &str, otherwise: &str| {
            safe_component(raw, MAX_ID_BYTES).unwrap_or_else(|| otherwise.into())
        };
        let mut out = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Start(format) => {
                    let when = self
                        .timezone
                        .timestamp_millis_opt(m.media_start_time_ms)
                        .single()
                        .unwrap_or_else(|| self.timezone.timestamp_millis_opt(0).unwrap());
                    let text = when.format(format).to_string();
                    out.push_str(&safe_component(&text, MAX_ID_BYTES).unwrap_or_default());
                }
                Piece::Field(field) => out.push_str(&match field {
                    Field::Subject => {
                        safe_component(m.subject, MAX_SUBJECT_BYTES).unwrap_or_else(fallback_id)
                    }
                    Field::MeetingCode => {
                        safe_component(m.meeting_code, MAX_ID_BYTES).unwrap_or_else(fallback_id)
                    }
                    Field::MeetingId => fallback_id(),
                    Field::UserId => id(m.userid, "user"),
                    Field::MeetingRecordId => id(m.meeting_record_id, "recording"),
                    Field::RecordFileId => id(file.map_or("", |f| f.0), "recording"),
                    Field::Index => file.map_or(0, |f| f.1).to_string(),
                }),
            }
        }
        safe_component(&out, MAX_COMPONENT_BYTES).unwrap_or_else(|| "_".into())
    }
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
pub fn artifact_key(video_id: &str, artifact: Artifact<'_>) -> RecordFileId {
    let key = match artifact {
        Artifact::Audio => format!("{video_id}/audio"),
        Artifact::Transcript { file_type, nth } => {
            let nth = second_or_later(nth)
                .map(|n| format!("/{n}"))
                .unwrap_or_default();
            format!("{video_id}/transcript/{}{nth}", safe_type(file_type))
        }
    };
    RecordFileId::new(key)
}

/// An artifact's file, beside its video (`video_path`, as stored) and named after it:
/// `{name}.m4a`, `{name}.transcript.{type}`, and `{name}.transcript.2.{type}` for a second
/// transcript of the same type, `{name}` being the video's file name without `.mp4`.
pub fn artifact_path(video_path: &str, artifact: Artifact<'_>) -> String {
    let stem = video_path.strip_suffix(".mp4").unwrap_or(video_path);
    match artifact {
        Artifact::Audio => format!("{stem}.m4a"),
        Artifact::Transcript { file_type, nth } => {
            let nth = second_or_later(nth)
                .map(|n| format!("{n}."))
                .unwrap_or_default();
            format!("{stem}.transcript.{nth}{}", safe_type(file_type))
        }
    }
}

/// A transcript's number in its key and name: none for the first of its type, so that
/// the usual single transcript keeps the plain key and name.
fn second_or_later(nth: usize) -> Option<usize> {
    (nth != 1).then_some(nth)
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

    /// The layout before templates, verbatim: the default template must render it.
    fn legacy_meeting_dir(
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
        let fallback_id =
            safe_component(meeting_id, MAX_ID_BYTES).unwrap_or_else(|| "meeting".into());
        let code =
            safe_component(meeting_code, MAX_ID_BYTES).unwrap_or_else(|| fallback_id.clone());
        let subject = safe_component(subject, MAX_SUBJECT_BYTES).unwrap_or(fallback_id);
        format!("{}/{code}-{subject}", when.format("%Y/%m/%d"))
    }

    fn legacy_file_path(dir: &str, record_file_id: &str) -> String {
        let id = safe_component(record_file_id, MAX_ID_BYTES).unwrap_or_else(|| "recording".into());
        format!("{dir}/{id}.mp4")
    }

    fn fields<'a>(subject: &'a str, userid: &'a str) -> MeetingFields<'a> {
        MeetingFields {
            userid,
            subject,
            meeting_code: "29858611111",
            meeting_id: "6249",
            meeting_record_id: "1900000000000000001",
            media_start_time_ms: 1613738006000,
        }
    }

    fn default_layout(tz: chrono_tz::Tz) -> Layout {
        Layout::parse(DEFAULT_LAYOUT, tz).unwrap()
    }

    fn meeting_dir(tz: chrono_tz::Tz, ms: i64, code: &str, subject: &str, id: &str) -> String {
        default_layout(tz).meeting_dir(&MeetingFields {
            meeting_code: code,
            meeting_id: id,
            media_start_time_ms: ms,
            ..fields(subject, "u")
        })
    }

    fn file_path(dir: &str, record_file_id: &str) -> String {
        default_layout(chrono_tz::Asia::Shanghai).file_path(
            dir,
            &fields("x", "u"),
            record_file_id,
            1,
        )
    }

    fn dir(subject: &str) -> String {
        meeting_dir(
            chrono_tz::Asia::Shanghai,
            1613738006000,
            "29858611111",
            subject,
            "6249",
        )
    }

    const HOSTILE: [&str; 13] = [
        "../../etc/passwd",
        "a/b\\c",
        "CON",
        "line1\nline2",
        "a\0b",
        "..",
        ".hidden",
        "trailing. ",
        "周会 🎉🚀",
        "",
        " . ",
        "/",
        "{subject}",
    ];

    #[test]
    fn the_default_template_renders_the_layout_before_templates() {
        let long = "会".repeat(300);
        let cases: Vec<&str> = HOSTILE.iter().copied().chain([long.as_str()]).collect();
        for tz in [chrono_tz::Asia::Shanghai, chrono_tz::America::New_York] {
            for (code, id) in [
                ("29858611111", "6249"),
                ("", "6249"),
                ("..", ""),
                ("CON", "x/y"),
            ] {
                for &s in &cases {
                    let old = legacy_meeting_dir(tz, 1613738006000, code, s, id);
                    assert_eq!(meeting_dir(tz, 1613738006000, code, s, id), old, "{s:?}");
                    for file in ["123", "", "../x", "a\0b"] {
                        assert_eq!(
                            default_layout(tz).file_path(&old, &fields(s, "u"), file, 2),
                            legacy_file_path(&old, file)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn per_user_folders_keep_hostile_userids_and_subjects_under_the_root() {
        let layout = Layout::parse(
            "{userid}/{start:%Y-%m}/{start:%d %H%M} {subject}/{index}-{record_file_id}",
            chrono_tz::Asia::Shanghai,
        )
        .unwrap();
        let root = Path::new("/archive");
        let long = "x".repeat(300);
        let cases: Vec<&str> = HOSTILE.iter().copied().chain([long.as_str()]).collect();
        for &user in &cases {
            for &subject in &cases {
                let m = fields(subject, user);
                let dir = layout.meeting_dir(&m);
                let file = layout.file_path(&dir, &m, "../../1", 3);
                let path = resolve(root, &file).unwrap();
                assert!(path.starts_with(root));
                assert_eq!(path.components().count(), 6, "{user:?} {subject:?}: {file}");
                for part in file.split('/') {
                    assert!(part.len() <= MAX_COMPONENT_BYTES, "{part}");
                    assert!(!part.contains(".."), "{part}");
                    assert!(!part.chars().any(char::is_control), "{part:?}");
                }
            }
        }
        let m = fields("周会", "zhangsan");
        let dir = layout.meeting_dir(&m);
        assert_eq!(dir, "zhangsan/2021-02/19 2033 周会");
        assert_eq!(
            layout.file_path(&dir, &m, "77", 2),
            format!("{dir}/2-77.mp4")
        );
        let nobody = layout.meeting_dir(&fields("x", ""));
        assert!(nobody.starts_with("user/"), "{nobody}");
    }

    #[test]
    fn templates_that_collide_or_do_not_parse_are_refused() {
        let tz = chrono_tz::UTC;
        let err = |t: &str| Layout::parse(t, tz).unwrap_err();
        assert_eq!(err("{userid}/{subject}"), LayoutError::Collides);
        assert_eq!(err("{userid}/{index}"), LayoutError::Collides);
        assert_eq!(err("{record_file_id}/video"), LayoutError::PerFileFolder);
        assert_eq!(
            err("{index}/{meeting_record_id}-{index}"),
            LayoutError::PerFileFolder
        );
        assert_eq!(err("a//{record_file_id}"), LayoutError::EmptyComponent);
        assert_eq!(err("/{record_file_id}"), LayoutError::EmptyComponent);
        assert_eq!(err("{record_file_id}/"), LayoutError::EmptyComponent);
        assert_eq!(
            err("{user}/{record_file_id}"),
            LayoutError::UnknownField("user".into())
        );
        assert_eq!(
            err("{start:%Q}/{record_file_id}"),
            LayoutError::BadDate("%Q".into())
        );
        assert!(matches!(
            err("{subject/{record_file_id}"),
            LayoutError::Syntax(_)
        ));
        assert!(matches!(err("a}/{record_file_id}"), LayoutError::Syntax(_)));
        assert!(Layout::parse("{meeting_record_id}/{index}", tz).is_ok());
        assert!(Layout::parse("{userid}/{record_file_id}", tz).is_ok());
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
        let root = Path::new("/archive");
        for s in &HOSTILE[..9] {
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
        let d = "2024/01/02/1-x/9.mp4";
        assert_eq!(artifact_path(d, Artifact::Audio), "2024/01/02/1-x/9.m4a");
        let t = |file_type, nth| Artifact::Transcript { file_type, nth };
        assert_eq!(
            artifact_path(d, t("txt", 1)),
            "2024/01/02/1-x/9.transcript.txt"
        );
        assert_eq!(
            artifact_path(d, t("PDF", 2)),
            "2024/01/02/1-x/9.transcript.2.pdf"
        );
        assert_eq!(
            artifact_path(d, t("../../x/../docx", 1)),
            "2024/01/02/1-x/9.transcript.xdocx"
        );
        assert_eq!(
            artifact_path(d, t("", 1)),
            "2024/01/02/1-x/9.transcript.bin"
        );
        assert_eq!(artifact_key("9", Artifact::Audio), "9/audio");
        assert_eq!(artifact_key("9", t("docs", 1)), "9/transcript/docx");
        assert_eq!(artifact_key("9", t("docs", 3)), "9/transcript/docx/3");
        assert_eq!(
            artifact_path(d, t("docs", 1)),
            "2024/01/02/1-x/9.transcript.docx"
        );
        for nth in 1..3 {
            assert!(resolve(Path::new("/a"), &artifact_path(d, t("../..", nth))).is_ok());
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
