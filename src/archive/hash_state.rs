//! Saving and restoring a running SHA-256, so that a resumed transfer need not re-read the
//! bytes it already wrote.

use sha2::Sha256;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};

/// Bumped if the saved layout ever changes; an unknown version is re-hashed from the file.
const FORMAT_VERSION: u8 = 1;

pub fn save(hasher: &Sha256) -> Vec<u8> {
    let state = hasher.serialize();
    let mut out = Vec::with_capacity(1 + state.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&state);
    out
}

/// `None` when the state was saved by another format version or is damaged.
pub fn restore(saved: &[u8]) -> Option<Sha256> {
    let (&version, state) = saved.split_first()?;
    if version != FORMAT_VERSION {
        return None;
    }
    let state = SerializedState::<Sha256>::try_from(state).ok()?;
    Sha256::deserialize(&state).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn a_restored_hash_continues_where_it_stopped() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut first = Sha256::new();
        first.update(&data[..77_777]);
        let mut resumed = restore(&save(&first)).unwrap();
        resumed.update(&data[77_777..]);
        assert_eq!(resumed.finalize(), Sha256::digest(&data));
    }

    #[test]
    fn unknown_versions_and_damage_are_refused() {
        let mut saved = save(&Sha256::new());
        saved[0] = 99;
        assert!(restore(&saved).is_none());
        assert!(restore(&[FORMAT_VERSION, 1, 2, 3]).is_none());
        assert!(restore(&[]).is_none());
    }
}
