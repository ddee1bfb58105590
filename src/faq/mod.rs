//! Per-tenant FAQ matching: finds the FAQ entry a chat message is asking about and
//! says how sure it is. Build one [`FaqIndex`] per tenant; it is immutable and `Sync`.
//!
//! # Pipeline
//! 1. [`normalize`]: lower-case, fold Latin diacritics (é→e, ß→ss), split on anything
//!    that is not a letter or digit; CJK runs become character bigrams.
//! 2. Content words: English stop words and chat filler ("hi", "pls", "quick
//!    question") are dropped. Question words (what/where/when/how/much…) are kept,
//!    because "where is the shop" and "when is the shop open" are different FAQs, but
//!    they only count in a text where a content word also matched, so "what is the
//!    meaning of life" does not match every FAQ that starts with "What". The rest are
//!    stemmed with Porter2 (`stem.rs`).
//! 3. Typos (`fuzzy.rs`): a word the tenant's vocabulary lacks is mapped to the nearest
//!    known spelling, 1 edit for 4–7 letters and 2 for 8+, earning 0.7 (0.5 for two
//!    edits) of an exact word's credit.
//! 4. Each question and each example is scored on its own; an entry is represented by
//!    its best text, which is returned as [`Match::matched_text`].
//!
//! # Confidence
//! Each term weighs its IDF over the tenant's entries, `ln(1 + (N - df + 0.5) / (df +
//! 0.5))`; a word the index has never seen weighs half a one-entry term. For a message
//! `q` and a text `t`, with `M` the weight of shared terms (times typo credit), `Q` and
//! `T` their total weights and `κ` the weight of a one-entry term:
//!
//! `raw = (1 + β²) M / (β² T + Q + κ)` with `β = 0.5`,
//!
//! an IDF-weighted soft F-beta of "how much of the message the FAQ text explains" and
//! "how much of the FAQ text the message mentions", leaning to the former (messages
//! carry extra context; FAQ texts are short). `κ` is a pseudo-count: one matched word is
//! weaker evidence than several. The confidence is `raw` through a fixed S-curve
//! (logistic, raw 0.30 -> 0.5, slope 11, lower half stretched to start at 0: raw 0.1 ->
//! 0.07, 0.4 -> 0.75, 0.5 -> 0.9), capped at 0.99; exactly
//! 1.0 is reserved for a message equal to a question or example up to case,
//! punctuation and accents, found by a hash lookup before any scoring. Entries are
//! ranked by confidence; `priority` breaks ties closer than 1e-6.
//!
//! # What a threshold of 0.5 means
//! The message and the matched question or example share most of their distinctive
//! words (raw overlap ≈ 0.3). On the evaluation in `tests/eval.rs` (four tenants of ten
//! FAQs), answers at 0.5 or more were right 96% of the time on the set the knobs were
//! tuned on and 90% on held-out messages, and 86% of answerable messages got a right
//! answer. 0.7 trades answers for precision (95–96% right, ~65% answered); 0.3 answers
//! more (~93%) but is wrong 8–13% of the time. Most off-topic messages (65–76%) score
//! 0.1 or less, but 12–22% reach 0.5: those share a distinctive word with a short FAQ
//! ("do you sell skateboards" vs "Do you sell electric bikes?" scores 0.77).
//!
//! # Tried and dropped
//! A BM25F ranking blend and a runner-up margin penalty did not improve the tuning set,
//! so ranking uses the confidence itself (plain BM25 remains the baseline in the eval).
//! The category is not used: labels like "General" carry little, and mixing them into
//! the overlap would blur what the confidence means.

mod fuzzy;
mod fxhash;
mod index;
pub mod normalize;
mod set;
mod stem;

pub use set::{FaqHit, FaqSet};
pub use stem::stem;

use std::hash::Hash;

use fxhash::FxHashMap;
use index::{DocText, Index};

/// One FAQ entry as a tenant admin wrote it.
#[derive(Clone, Debug)]
pub struct FaqDoc<Id> {
    /// Caller's identifier, returned in [`Match::id`].
    pub id: Id,
    /// The canonical question.
    pub question: String,
    /// Alternative phrasings of the same question; each is matched like the question.
    pub examples: Vec<String>,
    /// Optional topic ("Billing"). Kept for the caller; not used for matching (see the
    /// crate docs for why).
    pub category: Option<String>,
    /// Breaks ties: between near-equal confidences the higher priority wins.
    pub priority: i64,
}

/// A matched FAQ entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Match<Id> {
    /// The matched entry's [`FaqDoc::id`].
    pub id: Id,
    /// How sure the matcher is, in `0.0..=1.0`; see the crate docs for its meaning.
    pub confidence: f64,
    /// The question or example of the entry that matched best.
    pub matched_text: String,
}

/// Knobs of the matcher. Defaults were chosen on the development set of `tests/eval.rs`.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// Weight multiplier for interrogatives ("where", "how", "much").
    pub question_word_factor: f32,
    /// Weight of a word the index has never seen, relative to a term in one document.
    pub unknown_word_factor: f32,
    /// F-beta weighting of the overlap: below 1 favours explaining the whole query over
    /// covering every word of the FAQ text.
    pub text_coverage_beta: f32,
    /// Match credit for a term reached with one and with two typo corrections.
    pub fuzzy_credit: [f32; 2],
    /// Pseudo-weight added to the overlap's denominator (in units of a one-document
    /// term's IDF), so a match on one word counts for less than a match on several.
    pub evidence_prior: f32,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            question_word_factor: 1.0,
            unknown_word_factor: 0.5,
            text_coverage_beta: 0.5,
            fuzzy_credit: [0.7, 0.5],
            evidence_prior: 1.0,
        }
    }
}

/// Confidences closer than this count as a tie, which priority then breaks.
const TIE_EPSILON: f64 = 1e-6;
/// 1.0 is reserved for an exact (normalised) question or example.
const MAX_INEXACT_CONFIDENCE: f64 = 0.99;
/// Raw overlap that maps to confidence 0.5: the lowest value at which precision over
/// everything scoring at least that much stays >= 96% on the dev set of `tests/eval.rs`.
const CALIBRATION_CENTRE: f64 = 0.30;
/// Steepness of the S-curve: raw 0.1 (a weak one-word overlap) maps to ~0.07, raw 0.5
/// (a typical paraphrase) to ~0.9.
const CALIBRATION_SLOPE: f64 = 11.0;

/// Maps a raw overlap in 0..=1 onto the confidence scale: a logistic curve whose lower
/// half is stretched so that raw 0 gives exactly 0 while the centre stays at 0.5.
fn calibrate(raw: f64) -> f64 {
    let logistic = |x: f64| 1.0 / (1.0 + (-CALIBRATION_SLOPE * (x - CALIBRATION_CENTRE)).exp());
    let raw = raw.clamp(0.0, 1.0);
    let confidence = if raw < CALIBRATION_CENTRE {
        let floor = logistic(0.0);
        0.5 * (logistic(raw) - floor) / (0.5 - floor)
    } else {
        logistic(raw)
    };
    confidence.clamp(0.0, MAX_INEXACT_CONFIDENCE)
}

/// An immutable, thread-safe matcher over one tenant's FAQ entries.
pub struct FaqIndex<Id> {
    ids: Vec<Id>,
    priority: Vec<i64>,
    /// Questions and examples, numbered as in [`Index::build`].
    texts: Vec<String>,
    text_doc: Vec<usize>,
    /// Normalised text -> text number, for the exact-match fast path.
    exact: FxHashMap<String, usize>,
    index: Index,
}

/// A document's score for one query, before it becomes a [`Match`].
struct Scored {
    doc: usize,
    text: usize,
    confidence: f64,
}

impl<Id: Copy + Eq + Hash> FaqIndex<Id> {
    /// Indexes `docs` with the default tuning.
    pub fn build(docs: Vec<FaqDoc<Id>>) -> Self {
        Self::build_tuned(docs, Tuning::default())
    }

    /// Indexes `docs` with explicit knobs (for evaluation only).
    #[doc(hidden)]
    pub fn build_tuned(docs: Vec<FaqDoc<Id>>, tuning: Tuning) -> Self {
        let fields: Vec<DocText> = docs
            .iter()
            .map(|d| DocText {
                question: &d.question,
                examples: &d.examples,
            })
            .collect();
        let index = Index::build(&fields, tuning);
        let mut texts = Vec::new();
        let mut text_doc = Vec::new();
        for (d, doc) in docs.iter().enumerate() {
            for text in std::iter::once(&doc.question).chain(&doc.examples) {
                texts.push(text.clone());
                text_doc.push(d);
            }
        }
        let priority: Vec<i64> = docs.iter().map(|d| d.priority).collect();
        let mut exact: FxHashMap<String, usize> = FxHashMap::default();
        for (t, text) in texts.iter().enumerate() {
            let key = normalize::exact_key(text);
            if key.is_empty() {
                continue;
            }
            let entry = exact.entry(key).or_insert(t);
            // On a duplicate text across entries the higher priority owns it.
            if priority[text_doc[t]] > priority[text_doc[*entry]] {
                *entry = t;
            }
        }
        FaqIndex {
            ids: docs.iter().map(|d| d.id).collect(),
            priority,
            texts,
            text_doc,
            exact,
            index,
        }
    }

    /// Number of indexed entries.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no entries are indexed.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The most likely entry for `query`, or `None` when no entry shares a word with it.
    pub fn best(&self, query: &str) -> Option<Match<Id>> {
        self.best_of_words(normalize::words(query))
    }

    /// `best` for a query already split into its words (`normalize::words`).
    pub fn best_of_words(&self, words: Vec<String>) -> Option<Match<Id>> {
        if let Some(&text) = self.exact.get(&words.join(" ")) {
            return Some(self.to_match(&Scored {
                doc: self.text_doc[text],
                text,
                confidence: 1.0,
            }));
        }
        let scored = self.score(words, None);
        let top = scored
            .iter()
            .map(|s| s.confidence)
            .fold(f64::NEG_INFINITY, f64::max);
        // Among near-ties the higher priority, then the earlier entry, wins.
        scored
            .iter()
            .filter(|s| top - s.confidence <= TIE_EPSILON)
            .max_by(|a, b| {
                self.priority[a.doc]
                    .cmp(&self.priority[b.doc])
                    .then(b.doc.cmp(&a.doc))
            })
            .map(|s| self.to_match(s))
    }

    /// Up to `k` entries for `query`, most confident first, one per distinct id.
    pub fn top(&self, query: &str, k: usize) -> Vec<Match<Id>> {
        if k == 0 {
            return Vec::new();
        }
        let words = normalize::words(query);
        let exact = self.exact.get(&words.join(" ")).copied();
        let mut scored = self.score(words, exact);
        self.sort(&mut scored);
        let mut out: Vec<Match<Id>> = Vec::with_capacity(k);
        for s in &scored {
            if out.len() == k {
                break;
            }
            if !out.iter().any(|m| m.id == self.ids[s.doc]) {
                out.push(self.to_match(s));
            }
        }
        out
    }

    fn to_match(&self, s: &Scored) -> Match<Id> {
        Match {
            id: self.ids[s.doc],
            confidence: s.confidence,
            matched_text: self.texts[s.text].clone(),
        }
    }

    /// Every document sharing a content word with the query's `words`, unsorted;
    /// `exact` pins that text's document to 1.0.
    fn score(&self, words: Vec<String>, exact: Option<usize>) -> Vec<Scored> {
        let analyzed = self.index.analyze(words);
        let candidates = if analyzed.is_empty() {
            Vec::new()
        } else {
            self.index.candidates(&analyzed)
        };
        let mut scored: Vec<Scored> = candidates
            .iter()
            .map(|c| Scored {
                doc: c.doc as usize,
                text: c.text as usize,
                confidence: calibrate(f64::from(c.overlap)),
            })
            .collect();
        if let Some(text) = exact {
            let doc = self.text_doc[text];
            scored.retain(|s| s.doc != doc);
            scored.push(Scored {
                doc,
                text,
                confidence: 1.0,
            });
        }
        scored
    }

    /// Confidence descending; within `TIE_EPSILON` of a run's head, priority descending.
    fn sort(&self, scored: &mut [Scored]) {
        scored.sort_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then(a.doc.cmp(&b.doc))
        });
        let mut start = 0;
        while start < scored.len() {
            let head = scored[start].confidence;
            let run = scored[start..]
                .iter()
                .take_while(|s| head - s.confidence <= TIE_EPSILON)
                .count();
            scored[start..start + run].sort_by(|a, b| {
                self.priority[b.doc]
                    .cmp(&self.priority[a.doc])
                    .then(a.doc.cmp(&b.doc))
            });
            start += run;
        }
    }
}

#[cfg(test)]
mod tests;
