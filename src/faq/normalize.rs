//! Text normalisation: case and Latin-diacritic folding, splitting into word tokens
//! (runs of CJK characters become overlapping bigrams) and the stop-word lists.
//!
//! Stop words are the usual English function words plus chat filler ("hi", "pls",
//! "quick question"). Question words ("where", "when", "how", "much", ...) are *not*
//! stop words: "where is the shop" and "when is the shop open" must not collapse to
//! the same query. They are indexed, but only confirm a match (see `lib.rs`).

use std::sync::LazyLock;

use crate::faq::fxhash::FxHashSet;

/// English function words and chat filler, sorted for binary search.
#[rustfmt::skip]
const STOP_WORDS: &[&str] = &[
    "a", "about", "above", "again", "against", "all", "also", "am", "an", "and", "any",
    "are", "aren", "arent", "as", "ask", "asking", "at", "be", "because", "been", "being",
    "below", "both", "but", "by", "can", "cannot", "cant", "could", "couldnt", "dear",
    "did", "didnt", "do", "does", "doesnt", "doing", "dont", "down", "each", "few", "for",
    "from", "further", "guys", "had", "hadnt", "has", "hasnt", "have", "havent", "having",
    "he", "hello", "her", "here", "hers", "herself", "hey", "hi", "him", "himself", "his",
    "hiya", "hmm", "i", "id", "if", "im", "in", "into", "is", "isnt", "it", "its", "itself",
    "ive", "just", "know", "let", "lets", "like", "me", "more", "most", "my", "myself",
    "no", "nor", "not", "now", "of", "off", "ok", "okay", "on", "once", "only", "or",
    "other", "ought", "our", "ours", "ourselves", "out", "over", "own", "please", "pls",
    "plz", "question", "questions", "quick", "r", "same", "she", "shes", "should",
    "shouldnt", "so", "some", "such", "tell", "than", "thank", "thanks", "that", "thats",
    "the", "their", "theirs", "them", "themselves", "then", "there", "theres", "these",
    "they", "theyre", "this", "those", "through", "thx", "to", "too", "u", "under", "until",
    "up", "ur", "very", "want", "wanted", "was", "wasnt", "we", "were", "weve", "while",
    "will", "with", "wonder", "wondering", "wont", "would", "wouldnt", "yeah", "yes", "you",
    "youd", "youll", "your", "youre", "yours", "yourself", "yourselves", "youve",
];

/// Interrogatives (and their apostrophe-less contractions), sorted for binary search.
const QUESTION_WORDS: &[&str] = &[
    "how", "hows", "many", "much", "what", "whats", "when", "whens", "where", "wheres", "which",
    "who", "whom", "whos", "whose", "why",
];

/// True for function words and chat filler that carry no FAQ-specific meaning.
pub fn is_stop_word(word: &str) -> bool {
    // A hash set: binary search over &str compares was a visible share of query time.
    static SET: LazyLock<FxHashSet<&'static str>> =
        LazyLock::new(|| STOP_WORDS.iter().copied().collect());
    SET.contains(word)
}

/// The canonical form of an interrogative ("whats" -> "what"), which is kept but
/// down-weighted; `None` for any other word.
pub fn question_word(word: &str) -> Option<&'static str> {
    // Every interrogative starts with h, m or w: skip the search for most words.
    if !matches!(word.as_bytes().first(), Some(b'h' | b'm' | b'w')) {
        return None;
    }
    let found = |w: &str| {
        QUESTION_WORDS
            .binary_search(&w)
            .ok()
            .map(|i| QUESTION_WORDS[i])
    };
    let exact = found(word)?;
    Some(word.strip_suffix('s').and_then(found).unwrap_or(exact))
}

/// The key under which a text counts as an exact match: its words joined by spaces.
/// Two texts that differ only in case, punctuation, spacing or accents share a key.
pub fn exact_key(text: &str) -> String {
    words(text).join(" ")
}

/// Splits `text` into folded word tokens.
///
/// Letters and digits of any script form words; apostrophes and combining marks are
/// dropped without splitting ("don't" -> "dont"); everything else (spaces, punctuation,
/// emoji) separates words. CJK text has no spaces, so each run of CJK characters yields
/// its overlapping character bigrams (or the lone character for a run of one).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut cjk = Vec::new();
    for c in text.chars() {
        // ASCII letters and digits are most of the traffic: skip the Unicode checks.
        if c.is_ascii_alphanumeric() && cjk.is_empty() {
            word.push(c.to_ascii_lowercase());
        } else if is_cjk(c) {
            flush_word(&mut word, &mut out);
            cjk.push(c);
        } else if c.is_alphanumeric() {
            flush_cjk(&mut cjk, &mut out);
            fold_into(c, &mut word);
        } else if !is_joiner(c) {
            flush_word(&mut word, &mut out);
            flush_cjk(&mut cjk, &mut out);
        }
    }
    flush_word(&mut word, &mut out);
    flush_cjk(&mut cjk, &mut out);
    out
}

#[inline]
fn flush_word(word: &mut String, out: &mut Vec<String>) {
    if !word.is_empty() {
        out.push(std::mem::take(word));
    }
}

#[inline]
fn flush_cjk(run: &mut Vec<char>, out: &mut Vec<String>) {
    match run.len() {
        0 => return,
        1 => out.push(run[0].to_string()),
        _ => out.extend(run.windows(2).map(|pair| pair.iter().collect::<String>())),
    }
    run.clear();
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x2FFFF) // CJK Extensions B and later
}

/// Characters that sit inside a word without splitting it.
fn is_joiner(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{02BC}' | '\u{00AD}') || is_combining_mark(c)
}

fn is_combining_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF)
}

/// Lower-cases `c`, strips common Latin diacritics and appends the result to `out`.
pub fn fold_into(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    for lower in c.to_lowercase() {
        if is_combining_mark(lower) {
            continue;
        }
        match fold_latin(lower) {
            Some(plain) => out.push_str(plain),
            None => out.push(lower),
        }
    }
}

/// ASCII spelling of a lower-case Latin-1 / Latin Extended-A letter, if it has one.
fn fold_latin(c: char) -> Option<&'static str> {
    let plain = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĳ' => "ij",
        'ĵ' => "j",
        'ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => "s",
        'ß' => "ss",
        'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    };
    Some(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_lists_are_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(QUESTION_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn question_word_contractions_map_to_the_plain_word() {
        assert_eq!(question_word("whats"), Some("what"));
        assert_eq!(question_word("whose"), Some("whose"));
        assert_eq!(question_word("bikes"), None);
    }

    #[test]
    fn case_punctuation_and_accents_fold_away() {
        assert_eq!(
            words("Où est le Café?! Straße, NIÑO"),
            ["ou", "est", "le", "cafe", "strasse", "nino"]
        );
        assert_eq!(exact_key("Don't  PANIC!!"), exact_key("dont panic"));
    }

    #[test]
    fn decomposed_accents_fold_like_precomposed_ones() {
        assert_eq!(words("cafe\u{301} Cafe\u{301}"), ["cafe", "cafe"]);
    }

    #[test]
    fn cjk_runs_become_bigrams_and_emoji_separate() {
        assert_eq!(words("营业时间🙂ok"), ["营业", "业时", "时间", "ok"]);
        assert_eq!(words("水 🚲🚲 bike"), ["水", "bike"]);
    }
}
