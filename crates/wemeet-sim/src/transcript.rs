//! The text of a simulated `txt` transcript: lines of a meeting in Chinese and English,
//! each with its time and speaker, so that a search of what was said has something to find.
//!
//! The text is a pure function of (seed, key, generation) and of the size the dataset drew
//! for the file: lines are added while they fit, and the rest is filled with blank lines,
//! so sizes (and every other file of the account) stay what they were before transcripts
//! spoke. A new generation (the `change_etag_after_first` fault) says other things in the
//! same number of bytes.
//!
//! Most lines are drawn from [`COMMON`] sentences, found in nearly every transcript. Each
//! of the [`RARE`] sentences is said in about one transcript in seven, at least once: a
//! test computes which transcripts hold a word from [`text`] itself, never from a guess.

use crate::prng::{SplitMix64, hash_str, mix64};

/// Said in nearly every meeting.
pub const COMMON: &[&str] = &[
    "我们先过一下上周的进度。",
    "这个方案大家还有意见吗？",
    "项目进度基本符合预期。",
    "下周再同步一次。",
    "客户反馈整体不错。",
    "我补充一点背景信息。",
    "Let's start with the weekly numbers.",
    "Any questions so far?",
    "I will send the notes after the call.",
    "Can everyone see my screen?",
];

/// Each said in about one transcript in seven: 预算 and 面试 (two characters, below what
/// a trigram index can match), 季度预算 (a four-character phrase), Supplier and Kubernetes
/// (to be found in another case).
pub const RARE: &[&str] = &[
    "今年的预算需要重新审批。",
    "明天下午安排两场面试。",
    "第三季度预算超支了百分之十。",
    "The Supplier contract needs a legal review.",
    "We should migrate the Kubernetes cluster next month.",
];

const SPEAKERS: &[&str] = &["张三", "李四", "王五", "Alice", "Bob"];

/// Share of transcripts in which each rare sentence is said.
const RARE_SHARE: u64 = 7;

/// The first lines, among which a transcript's rare sentences are placed: even the
/// smallest transcript (1 KiB) holds more lines than this.
const RARE_SLOTS: u64 = 8;

const TEXT_SALT: u64 = 0x5445_5854_0000_000A;

/// The `size` bytes of the transcript `key` (the download host's key of the artifact) in
/// its `generation`: UTF-8 lines `[HH:MM:SS] speaker: sentence`.
pub fn text(seed: u64, key: &str, generation: u64, size: u64) -> Vec<u8> {
    let mut rng = SplitMix64::new(mix64(seed ^ hash_str(key) ^ TEXT_SALT) ^ mix64(generation));
    let rare_at: Vec<Option<u64>> = RARE
        .iter()
        .map(|_| (rng.range(0, RARE_SHARE - 1) == 0).then(|| rng.range(0, RARE_SLOTS - 1)))
        .collect();
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(size);
    let mut seconds = 0u64;
    let mut line_no = 0u64;
    loop {
        seconds += rng.range(3, 30);
        let said = RARE
            .iter()
            .zip(&rare_at)
            .find(|(_, at)| **at == Some(line_no))
            .map_or_else(|| *rng.pick(COMMON), |(s, _)| *s);
        let speaker = rng.pick(SPEAKERS);
        let line = format!(
            "[{:02}:{:02}:{:02}] {speaker}: {said}\n",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        );
        if out.len() + line.len() > size {
            break;
        }
        out.extend_from_slice(line.as_bytes());
        line_no += 1;
    }
    out.resize(size, b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_the_size_asked_and_is_utf8_lines_with_time_and_speaker() {
        for size in [1024, 1500, 17 * 1024] {
            let t = text(42, "123-t1", 0, size);
            assert_eq!(t.len() as u64, size);
            let s = String::from_utf8(t).unwrap();
            let first = s.lines().next().unwrap();
            assert!(first.starts_with("[00:00:"), "{first}");
            assert!(
                SPEAKERS
                    .iter()
                    .any(|sp| first.contains(&format!("] {sp}: ")))
            );
        }
    }

    #[test]
    fn the_same_key_says_the_same_and_a_new_generation_other_things() {
        assert_eq!(text(1, "a-t1", 0, 4096), text(1, "a-t1", 0, 4096));
        assert_ne!(text(1, "a-t1", 0, 4096), text(1, "a-t1", 1, 4096));
        assert_ne!(text(1, "a-t1", 0, 4096), text(1, "b-t1", 0, 4096));
    }

    #[test]
    fn each_rare_sentence_is_in_some_transcripts_but_not_most() {
        let texts: Vec<String> = (0..200)
            .map(|i| String::from_utf8(text(7, &format!("{i}-t1"), 0, 2048)).unwrap())
            .collect();
        for rare in RARE {
            let n = texts.iter().filter(|t| t.contains(rare)).count();
            assert!((5..100).contains(&n), "{rare}: {n} of 200");
        }
    }
}
