//! Typo tolerance: finds the vocabulary spelling closest to an unknown query word.
//!
//! Uses the symmetric-delete scheme (as in SymSpell): every spelling is indexed under the
//! hashes of itself with up to two characters deleted, and a query word probes the hashes
//! of its own deletions. Any pair within edit distance `d` shares such a deletion, so a
//! lookup is a few dozen hash probes instead of a scan of the vocabulary; the hits are
//! then confirmed with a real (optimal string alignment) edit distance.

use crate::faq::fxhash::FxHashMap;

/// Spellings shorter than this are never matched fuzzily: "cat"/"car" are different words.
const MIN_FUZZY_LEN: usize = 4;
/// Longer words (URLs, pasted junk) are not typo-corrected; keeps all buffers on the stack.
const MAX_FUZZY_BYTES: usize = 40;
/// Odd multiplier of the polynomial deletion hash.
const HASH_BASE: u64 = 0x0000_0100_0000_01b3;

/// Allowed edits for a word of `len` characters: 0 below 4 chars, 1 up to 7, then 2.
pub fn max_edits(len: usize) -> usize {
    match len {
        0..MIN_FUZZY_LEN => 0,
        4..=7 => 1,
        _ => 2,
    }
}

struct Key {
    chars: Box<[char]>,
    term: u32,
    /// Higher is preferred among equally distant candidates (the term's document frequency).
    rank: u32,
}

/// The deletion index over all known spellings.
#[derive(Default)]
pub struct Fuzzy {
    keys: Vec<Key>,
    by_hash: FxHashMap<u64, Vec<u32>>,
}

impl Fuzzy {
    /// Indexes `spelling` as a way to write `term`. Repeated spellings are ignored.
    pub fn insert(&mut self, spelling: &str, term: u32, rank: u32) {
        let chars: Box<[char]> = spelling.chars().collect();
        // Shorter spellings are out of reach: a 4-char query word may differ by one edit.
        if chars.len() < MIN_FUZZY_LEN - 1 || spelling.len() > MAX_FUZZY_BYTES {
            return;
        }
        let mut whole = 0;
        for_each_deletion_hash(spelling, 0, |hash| whole = hash);
        let known = self.by_hash.get(&whole).map_or(&[][..], Vec::as_slice);
        if known.iter().any(|&k| self.keys[k as usize].chars == chars) {
            return;
        }
        // Only spellings of 6+ chars can be 2 edits from a word long enough for 2 edits.
        let depth = if chars.len() >= 6 { 2 } else { 1 };
        let index = self.keys.len() as u32;
        let by_hash = &mut self.by_hash;
        for_each_deletion_hash(spelling, depth, |hash| {
            let list = by_hash.entry(hash).or_default();
            if list.last() != Some(&index) {
                list.push(index);
            }
        });
        self.keys.push(Key { chars, term, rank });
    }

    /// The closest known term to `word` within its edit budget, with the edit distance.
    pub fn lookup(&self, word: &str) -> Option<(u32, usize)> {
        if word.len() > MAX_FUZZY_BYTES {
            return None;
        }
        let mut buf = ['\0'; MAX_FUZZY_BYTES];
        let mut len = 0;
        for c in word.chars() {
            buf[len] = c;
            len += 1;
        }
        let chars = &buf[..len];
        let budget = max_edits(len);
        if budget == 0 {
            return None;
        }
        let mut seen: Vec<u32> = Vec::new();
        let mut best: Option<(usize, u32, u32)> = None; // (distance, rank, term)
        for_each_deletion_hash(word, budget, |hash| {
            for &k in self.by_hash.get(&hash).map_or(&[][..], Vec::as_slice) {
                if seen.contains(&k) {
                    continue;
                }
                seen.push(k);
                let key = &self.keys[k as usize];
                let Some(d) = bounded_distance(chars, &key.chars, budget) else {
                    continue;
                };
                if best.is_none_or(|(bd, br, _)| d < bd || (d == bd && key.rank > br)) {
                    best = Some((d, key.rank, key.term));
                }
            }
        });
        best.map(|(d, _, term)| (term, d))
    }
}

/// Calls `f` with the hash of `word` and of every string obtained by deleting up to
/// `depth` (0, 1 or 2) of its characters.
///
/// The hash is a polynomial over the bytes, so a deletion's hash is assembled in O(1)
/// from prefix hashes: h(x ++ y) = h(x) * B^len(y) + h(y). `word` must be at most
/// `MAX_FUZZY_BYTES` long.
fn for_each_deletion_hash(word: &str, depth: usize, mut f: impl FnMut(u64)) {
    let bytes = word.as_bytes();
    let n = bytes.len();
    let mut prefix = [0u64; MAX_FUZZY_BYTES + 1];
    let mut power = [1u64; MAX_FUZZY_BYTES + 1];
    for (k, &b) in bytes.iter().enumerate() {
        // +1 so that a zero byte still changes the hash.
        prefix[k + 1] = prefix[k]
            .wrapping_mul(HASH_BASE)
            .wrapping_add(u64::from(b) + 1);
        power[k + 1] = power[k].wrapping_mul(HASH_BASE);
    }
    let segment = |a: usize, b: usize| prefix[b].wrapping_sub(prefix[a].wrapping_mul(power[b - a]));
    let mut bounds = [0usize; MAX_FUZZY_BYTES + 1];
    let mut chars = 0;
    for (i, _) in word.char_indices() {
        bounds[chars] = i;
        chars += 1;
    }
    bounds[chars] = n;
    f(prefix[n]);
    if depth == 0 {
        return;
    }
    for i in 0..chars {
        let (a, b) = (bounds[i], bounds[i + 1]);
        f(prefix[a]
            .wrapping_mul(power[n - b])
            .wrapping_add(segment(b, n)));
        for j in (i + 1..chars).take_while(|_| depth >= 2) {
            let (c, d) = (bounds[j], bounds[j + 1]);
            let kept = prefix[a].wrapping_mul(power[(c - b) + (n - d)]);
            f(kept
                .wrapping_add(segment(b, c).wrapping_mul(power[n - d]))
                .wrapping_add(segment(d, n)));
        }
    }
}

/// Optimal-string-alignment distance (adjacent swaps cost 1), or `None` above `max`.
/// Both words are at most `MAX_FUZZY_BYTES` characters, so the rows live on the stack.
fn bounded_distance(a: &[char], b: &[char], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    const W: usize = MAX_FUZZY_BYTES + 1;
    let (mut back2, mut prev, mut cur) = ([0usize; W], [0usize; W], [0usize; W]);
    for (j, cell) in prev.iter_mut().enumerate().take(b.len() + 1) {
        *cell = j;
    }
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(back2[j - 2] + 1);
            }
            cur[j] = d;
            row_min = row_min.min(d);
        }
        if row_min > max {
            return None;
        }
        (back2, prev, cur) = (prev, cur, back2);
    }
    let d = prev[b.len()];
    (d <= max).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn edit_distance_counts_swaps_as_one_edit() {
        assert_eq!(
            bounded_distance(&chars("bikes"), &chars("bikse"), 2),
            Some(1)
        );
        assert_eq!(
            bounded_distance(&chars("repair"), &chars("repiar"), 2),
            Some(1)
        );
        assert_eq!(
            bounded_distance(&chars("kitten"), &chars("sitting"), 3),
            Some(3)
        );
        assert_eq!(
            bounded_distance(&chars("kitten"), &chars("sitting"), 2),
            None
        );
    }

    #[test]
    fn lookup_finds_near_spellings_within_budget_only() {
        let mut f = Fuzzy::default();
        f.insert("appointment", 7, 1);
        f.insert("open", 3, 1);
        f.insert("bike", 4, 1);
        assert_eq!(f.lookup("apointmnet"), Some((7, 2)));
        assert_eq!(f.lookup("opne"), Some((3, 1)));
        assert_eq!(f.lookup("bke"), None); // too short to fuzz
        assert_eq!(f.lookup("oven"), Some((3, 1)));
        assert_eq!(f.lookup("ovens"), None);
    }

    #[test]
    fn equally_close_candidates_prefer_the_higher_rank() {
        let mut f = Fuzzy::default();
        f.insert("card", 1, 1);
        f.insert("cart", 2, 5);
        assert_eq!(f.lookup("carx"), Some((2, 1)));
    }
}
