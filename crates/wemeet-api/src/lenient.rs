//! How what Tencent sends is read: liberally.
//!
//! Tencent's documentation prints some numbers as strings (`"media_set_type":"2"` in the
//! `recording.completed` example) and adds fields freely. A field typed differently from
//! what we assumed must not cost the whole reply or event, so numbers are read from a JSON
//! number or a string of digits, and unknown fields are ignored (serde's default). Only what
//! a caller truly needs is checked, by the caller. Used through `#[serde_as(as = "...")]`.

use serde_with::{DefaultOnNull, DisplayFromStr, PickFirst, Same};

/// A number given as a JSON number or as a string of digits.
pub(crate) type Number = PickFirst<(Same, DisplayFromStr)>;

/// A [`Number`] that may be `null` (read as its default, as an absent one is with
/// `#[serde(default)]`).
pub(crate) type NumberOrDefault = DefaultOnNull<Number>;

/// A [`Number`] that may be absent or `null`: `None`.
pub(crate) type OptionalNumber = Option<Number>;
