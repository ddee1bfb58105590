//! The inverted index: vocabulary with IDF term weights, postings per text, the
//! analysis that turns a query into weighted, typo-corrected index terms, and the
//! per-text overlap score.

use crate::faq::Tuning;
use crate::faq::fuzzy::Fuzzy;
use crate::faq::fxhash::FxHashMap;
use crate::faq::normalize::{is_stop_word, question_word, words};
use crate::faq::stem::stem;

/// The text fields of one FAQ entry, borrowed for indexing.
pub struct DocText<'a> {
    pub question: &'a str,
    pub examples: &'a [String],
}

/// One content word as written, and its canonical form if it is a question word.
struct Word {
    surface: String,
    question: Option<&'static str>,
}

impl Word {
    /// The index term: question words unstemmed in canonical form (so "why" does not
    /// become "whi"), everything else stemmed.
    fn term(&self) -> String {
        self.question
            .map_or_else(|| stem(&self.surface), str::to_string)
    }
}

/// Content words among a text's `all` words: stop words dropped, unless nothing else
/// is left, so that "Who are you?" stays matchable.
fn content_words(all: Vec<String>) -> Vec<Word> {
    let has_content = all.iter().any(|w| !is_stop_word(w));
    all.into_iter()
        .filter(|w| !has_content || !is_stop_word(w))
        .map(|surface| Word {
            question: question_word(&surface),
            surface,
        })
        .collect()
}

/// A query reduced to index terms.
pub struct Query {
    /// Known terms with their match credit (1 exact, less for a typo correction),
    /// anchors (content words) first; see [`Index::candidates`].
    terms: Vec<(u32, f32)>,
    /// How many leading `terms` are anchors.
    anchors: usize,
    /// Total weight of the query, including words the index has never seen.
    weight: f32,
}

impl Query {
    /// True when no word of the query is known to the index.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

/// The best-matching text of one document for a query.
pub struct Candidate {
    pub doc: u32,
    pub text: u32,
    /// IDF-weighted soft F-beta overlap between the query and `text`, in 0..=1.
    pub overlap: f32,
}

/// Immutable search structures for one tenant's FAQ set.
pub struct Index {
    terms: FxHashMap<String, u32>,
    surfaces: FxHashMap<String, u32>,
    /// Per term: IDF, times the question-word factor for interrogatives.
    weight: Vec<f32>,
    is_question: Vec<bool>,
    text_postings: Vec<Vec<u32>>,
    text_doc: Vec<u32>,
    /// Per text: sum of the weights of its distinct terms.
    text_weight: Vec<f32>,
    fuzzy: Fuzzy,
    unknown_weight: f32,
    evidence_prior: f32,
    tuning: Tuning,
}

/// Assigns term ids while indexing.
#[derive(Default)]
struct Vocab {
    ids: FxHashMap<String, u32>,
    /// Spellings seen in the FAQ texts, so known query words skip stemming.
    surfaces: FxHashMap<String, u32>,
    is_question: Vec<bool>,
    spellings: Vec<(String, u32)>,
}

impl Vocab {
    fn intern_text(&mut self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for w in content_words(words(text)) {
            let term = w.term();
            let next = self.ids.len() as u32;
            let id = *self.ids.entry(term.clone()).or_insert(next);
            if id == next {
                self.is_question.push(w.question.is_some());
                self.spellings.push((term, id));
            }
            if !self.surfaces.contains_key(&w.surface) {
                self.surfaces.insert(w.surface.clone(), id);
                self.spellings.push((w.surface, id));
            }
            out.push(id);
        }
        out
    }
}

/// BM25's IDF, which stays positive even for a term in every document.
fn idf(doc_count: usize, df: usize) -> f32 {
    let (n, df) = (doc_count as f32, df as f32);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

impl Index {
    /// Indexes `docs`; texts are numbered per doc as the question, then its examples.
    pub fn build(docs: &[DocText], tuning: Tuning) -> Index {
        let mut vocab = Vocab::default();
        let mut text_terms: Vec<Vec<u32>> = Vec::new();
        let mut text_doc = Vec::new();
        let mut df: Vec<u32> = Vec::new();
        for (d, doc) in docs.iter().enumerate() {
            let mut doc_terms: Vec<u32> = Vec::new();
            let texts =
                std::iter::once(doc.question).chain(doc.examples.iter().map(String::as_str));
            for text in texts {
                let mut ids = vocab.intern_text(text);
                ids.sort_unstable();
                ids.dedup();
                doc_terms.extend(&ids);
                text_terms.push(ids);
                text_doc.push(d as u32);
            }
            doc_terms.sort_unstable();
            doc_terms.dedup();
            df.resize(vocab.ids.len(), 0);
            for id in doc_terms {
                df[id as usize] += 1;
            }
        }
        Self::assemble(vocab, text_terms, text_doc, &df, docs.len(), tuning)
    }

    fn assemble(
        vocab: Vocab,
        text_terms: Vec<Vec<u32>>,
        text_doc: Vec<u32>,
        df: &[u32],
        doc_count: usize,
        tuning: Tuning,
    ) -> Index {
        let weight: Vec<f32> = df
            .iter()
            .zip(&vocab.is_question)
            .map(|(&df, &question)| {
                let factor = if question {
                    tuning.question_word_factor
                } else {
                    1.0
                };
                idf(doc_count, df as usize) * factor
            })
            .collect();
        let mut text_postings = vec![Vec::new(); weight.len()];
        for (t, ids) in text_terms.iter().enumerate() {
            for &id in ids {
                text_postings[id as usize].push(t as u32);
            }
        }
        let text_weight = text_terms
            .iter()
            .map(|ids| ids.iter().map(|&id| weight[id as usize]).sum())
            .collect();
        let mut fuzzy = Fuzzy::default();
        for (spelling, id) in &vocab.spellings {
            fuzzy.insert(spelling, *id, df[*id as usize]);
        }
        Index {
            terms: vocab.ids,
            surfaces: vocab.surfaces,
            weight,
            is_question: vocab.is_question,
            text_postings,
            text_doc,
            text_weight,
            fuzzy,
            unknown_weight: tuning.unknown_word_factor * idf(doc_count, 1),
            evidence_prior: tuning.evidence_prior * idf(doc_count, 1),
            tuning,
        }
    }

    /// Reduces a query's words (from [`words`]) to known terms; unknown words only add
    /// to the query's weight.
    pub fn analyze(&self, words: Vec<String>) -> Query {
        let mut terms: Vec<(u32, f32)> = Vec::new();
        let mut unknown: Vec<(String, f32)> = Vec::new();
        let words = content_words(words);
        let only_question_words = words.iter().all(|w| w.question.is_some());
        for word in words {
            match self.resolve(&word) {
                Some((id, credit)) => match terms.iter_mut().find(|(t, _)| *t == id) {
                    Some(seen) => seen.1 = seen.1.max(credit),
                    None => terms.push((id, credit)),
                },
                None if unknown.iter().any(|(w, _)| *w == word.surface) => {}
                None => {
                    let factor = if word.question.is_some() {
                        self.tuning.question_word_factor
                    } else {
                        1.0
                    };
                    unknown.push((word.surface, self.unknown_weight * factor));
                }
            }
        }
        let known: f32 = terms.iter().map(|&(id, _)| self.weight[id as usize]).sum();
        let weight = known + unknown.iter().map(|(_, w)| w).sum::<f32>();
        terms.sort_by_key(|&(id, _)| self.is_question[id as usize]);
        // A query of nothing but question words ("who r u") anchors on them.
        let anchors = if only_question_words {
            terms.len()
        } else {
            terms
                .iter()
                .filter(|&&(id, _)| !self.is_question[id as usize])
                .count()
        };
        Query {
            terms,
            anchors,
            weight,
        }
    }

    /// The index term for `word` and the credit it earns: exact stem first, then the
    /// nearest spelling of either the word or its stem ("reparing" stems to "repar").
    fn resolve(&self, word: &Word) -> Option<(u32, f32)> {
        if let Some(&id) = self.surfaces.get(&word.surface) {
            return Some((id, 1.0));
        }
        let term = word.term();
        if let Some(&id) = self.terms.get(&term) {
            return Some((id, 1.0));
        }
        let by_stem = (term != word.surface).then(|| self.fuzzy.lookup(&term));
        let (id, edits) = [self.fuzzy.lookup(&word.surface), by_stem.flatten()]
            .into_iter()
            .flatten()
            .min_by_key(|&(_, edits)| edits)?;
        let credit = match edits {
            0 => 1.0,
            1 => self.tuning.fuzzy_credit[0],
            _ => self.tuning.fuzzy_credit[1],
        };
        Some((id, credit))
    }

    /// One candidate per document that shares a content word with the query: the
    /// document's best text by overlap. Question words only add agreement to texts an
    /// anchor already matched, so "what is the meaning of life" matches nothing just
    /// because a FAQ starts with "What".
    pub fn candidates(&self, query: &Query) -> Vec<Candidate> {
        // Sparse accumulation: a query touches a handful of texts even in a big index.
        let mut matched: FxHashMap<u32, f32> =
            FxHashMap::with_capacity_and_hasher(32, Default::default());
        for (i, &(id, credit)) in query.terms.iter().enumerate() {
            let w = self.weight[id as usize] * credit;
            for &t in &self.text_postings[id as usize] {
                if i < query.anchors {
                    *matched.entry(t).or_insert(0.0) += w;
                } else if let Some(m) = matched.get_mut(&t) {
                    *m += w;
                }
            }
        }
        let beta2 = self.tuning.text_coverage_beta.powi(2);
        let mut all: Vec<Candidate> = matched
            .into_iter()
            .map(|(t, m)| {
                let tw = self.text_weight[t as usize];
                let overlap = (1.0 + beta2) * m / (beta2 * tw + query.weight + self.evidence_prior);
                Candidate {
                    doc: self.text_doc[t as usize],
                    text: t,
                    overlap,
                }
            })
            .collect();
        // Best text per document: order by doc, then overlap descending (then text, so
        // equal overlaps resolve the same way every time), and keep each doc's first.
        all.sort_unstable_by(|a, b| {
            a.doc
                .cmp(&b.doc)
                .then(b.overlap.total_cmp(&a.overlap))
                .then(a.text.cmp(&b.text))
        });
        all.dedup_by_key(|c| c.doc);
        all
    }
}
