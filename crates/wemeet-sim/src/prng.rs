//! A tiny, portable pseudo-random generator for everything the simulator must reproduce.
//!
//! The dataset and the recording bytes must be identical across runs, machines and
//! dependency upgrades (a test compares a download with a manifest computed earlier, a demo
//! is re-run with the same `--seed`), so they cannot depend on `rand`'s algorithms, which
//! change between major versions. SplitMix64 is counter-based, so any position of a stream
//! can be computed directly: that is what makes Range requests on multi-GB files cheap.

/// The SplitMix64 increment (the golden ratio in 64-bit fixed point).
pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finaliser: a bijective mix that turns a counter into a pseudo-random word.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, to turn an id into a key; stable forever, unlike `std`'s hashers.
pub fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// A sequential SplitMix64 stream.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix64(self.0)
    }

    /// A value in `lo..=hi` (the modulo bias is irrelevant for test data).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.next_u64() % span,
            None => self.next_u64(),
        }
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64 - 1) as usize]
    }

    /// A string of `len` characters drawn from `alphabet`.
    pub fn string(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len).map(|_| char::from(*self.pick(alphabet))).collect()
    }

    /// A decimal number of exactly `digits` digits (no leading zero), as ids are.
    pub fn digits(&mut self, digits: u32) -> String {
        let lo = 10u64.pow(digits - 1);
        self.range(lo, lo * 10 - 1).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn digits_have_the_requested_length() {
        let mut r = SplitMix64::new(1);
        for d in [9, 10, 11, 19] {
            assert_eq!(r.digits(d).len(), d as usize);
        }
    }

    #[test]
    fn range_stays_inside() {
        let mut r = SplitMix64::new(3);
        for _ in 0..1000 {
            let v = r.range(5, 9);
            assert!((5..=9).contains(&v));
        }
        assert_eq!(r.range(4, 4), 4);
    }
}
