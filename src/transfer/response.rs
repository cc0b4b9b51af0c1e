//! What the download host's answer means for an attempt, before a byte is written: the
//! whole status matrix in one pure function, so every case has a unit test.

/// The parts of an answer that decide.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseHead<'a> {
    pub status: u16,
    pub content_range: Option<&'a str>,
    /// Only a strong ETag identifies the bytes.
    pub etag: Option<&'a str>,
    pub content_length: Option<u64>,
    pub content_type: Option<&'a str>,
}

/// What to do with the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Write the body; with `from_zero`, the host sent the whole file although the
    /// attempt resumed (it ignored the range, or the file changed): start at byte 0.
    Body { from_zero: bool },
    /// The host refused the address (403, 401): it has expired or was revoked.
    Refused(u16),
    /// The bytes on record no longer belong to this file: forget them, start over.
    Restart(String),
    /// This body cannot be the recording (an error page, another length): nothing is
    /// written, the checkpoint stays.
    NotTheRecording(String),
    /// Another status (5xx, 416 short of the end, ...): retry later.
    Status(u16),
}

/// Judges `answer` to a request for the bytes from `offset` of a `size`-byte file whose
/// recorded bytes came with `etag`.
pub fn judge(answer: &ResponseHead<'_>, offset: u64, size: u64, etag: Option<&str>) -> Verdict {
    let from_zero = match answer.status {
        401 | 403 => return Verdict::Refused(answer.status),
        206 => {
            let expected = format!("bytes {offset}-{}/{size}", size.saturating_sub(1));
            let got = answer.content_range.unwrap_or("");
            if got != expected {
                return Verdict::Restart(format!("Content-Range `{got}` instead of `{expected}`"));
            }
            if etag.is_some() && answer.etag != etag {
                return Verdict::Restart("the ETag changed".into());
            }
            false
        }
        200 => offset > 0,
        other => return Verdict::Status(other),
    };
    // Never write a body that cannot be the recording: an error page has another length
    // or type than the listing promised.
    let remaining = if from_zero { size } else { size - offset };
    if answer.content_length != Some(remaining) {
        return Verdict::NotTheRecording(format!(
            "the host announced {:?} bytes where {remaining} were expected",
            answer.content_length
        ));
    }
    // The type's essence, not a substring: a transcript's docx is
    // `application/vnd.openxmlformats-...`, while an error page is `application/xml`.
    let content_type = answer.content_type.unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if [
        "application/xml",
        "text/xml",
        "text/html",
        "application/json",
        "application/problem+json",
    ]
    .contains(&essence.as_str())
    {
        return Verdict::NotTheRecording(format!(
            "the host sent `{content_type}`, not a recording"
        ));
    }
    Verdict::Body { from_zero }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 100;

    fn answer(status: u16, length: u64) -> ResponseHead<'static> {
        ResponseHead {
            status,
            content_length: Some(length),
            content_type: Some("video/mp4"),
            etag: Some("\"e1\""),
            ..ResponseHead::default()
        }
    }

    #[test]
    fn a_whole_file_from_zero_is_written() {
        assert_eq!(
            judge(&answer(200, SIZE), 0, SIZE, None),
            Verdict::Body { from_zero: false }
        );
    }

    #[test]
    fn a_200_to_a_range_request_restarts_from_zero() {
        assert_eq!(
            judge(&answer(200, SIZE), 40, SIZE, Some("\"e1\"")),
            Verdict::Body { from_zero: true }
        );
        // ... but only if it is the whole file.
        assert!(matches!(
            judge(&answer(200, 60), 40, SIZE, Some("\"e1\"")),
            Verdict::NotTheRecording(_)
        ));
    }

    #[test]
    fn a_206_continues_only_at_the_right_range_with_the_same_etag() {
        let ok = ResponseHead {
            content_range: Some("bytes 40-99/100"),
            ..answer(206, 60)
        };
        assert_eq!(
            judge(&ok, 40, SIZE, Some("\"e1\"")),
            Verdict::Body { from_zero: false }
        );
        assert_eq!(
            judge(&ok, 40, SIZE, None),
            Verdict::Body { from_zero: false }
        );
        let shifted = ResponseHead {
            content_range: Some("bytes 0-99/100"),
            ..ok
        };
        assert!(matches!(
            judge(&shifted, 40, SIZE, None),
            Verdict::Restart(_)
        ));
        let resized = ResponseHead {
            content_range: Some("bytes 40-119/120"),
            ..ok
        };
        assert!(matches!(
            judge(&resized, 40, SIZE, None),
            Verdict::Restart(_)
        ));
        assert_eq!(
            judge(&ok, 40, SIZE, Some("\"e0\"")),
            Verdict::Restart("the ETag changed".into())
        );
    }

    #[test]
    fn refusals_and_other_statuses_write_nothing() {
        assert_eq!(
            judge(&answer(403, 120), 0, SIZE, None),
            Verdict::Refused(403)
        );
        assert_eq!(
            judge(&answer(401, 0), 40, SIZE, None),
            Verdict::Refused(401)
        );
        for status in [304, 404, 416, 500, 503] {
            assert_eq!(
                judge(&answer(status, 0), 40, SIZE, None),
                Verdict::Status(status)
            );
        }
    }

    #[test]
    fn error_pages_are_never_the_recording() {
        let xml = ResponseHead {
            content_type: Some("application/xml"),
            ..answer(200, SIZE)
        };
        assert!(matches!(
            judge(&xml, 0, SIZE, None),
            Verdict::NotTheRecording(_)
        ));
        let unknown_length = ResponseHead {
            content_length: None,
            ..answer(200, SIZE)
        };
        assert!(matches!(
            judge(&unknown_length, 0, SIZE, None),
            Verdict::NotTheRecording(_)
        ));
    }
}
