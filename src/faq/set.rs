//! A tenant's answerable training items and their matcher, built together so an
//! index hit leads straight to the item.

use crate::domain::{TrainingItem, TrainingKind};

use super::{FaqDoc, FaqIndex};

/// The FAQs (and canned replies) a tenant's bot can answer from.
pub struct FaqSet {
    index: FaqIndex<usize>,
    items: Vec<TrainingItem>,
}

/// The best FAQ for a question.
pub struct FaqHit<'a> {
    pub item: &'a TrainingItem,
    pub confidence: f64,
    /// The question or example that matched best.
    pub matched_text: String,
}

impl FaqSet {
    /// Indexes the active FAQ and canned-reply items; examples are for the LLM.
    pub fn build(training: &[TrainingItem]) -> Self {
        let items: Vec<TrainingItem> = training
            .iter()
            .filter(|t| t.active && matches!(t.kind, TrainingKind::Faq | TrainingKind::CannedReply))
            .cloned()
            .collect();
        let docs = items
            .iter()
            .enumerate()
            .map(|(i, t)| FaqDoc {
                id: i,
                question: t.question.clone(),
                examples: t.examples.clone(),
                category: t.category.clone(),
                priority: t.priority,
            })
            .collect();
        Self {
            index: FaqIndex::build(docs),
            items,
        }
    }

    /// The best match for `text`, whatever its confidence.
    pub fn best(&self, text: &str) -> Option<FaqHit<'_>> {
        self.best_of_words(super::normalize::words(text))
    }

    /// `best` for a text already split into its words (`normalize::words`).
    pub fn best_of_words(&self, words: Vec<String>) -> Option<FaqHit<'_>> {
        let m = self.index.best_of_words(words)?;
        Some(FaqHit {
            item: &self.items[m.id],
            confidence: m.confidence,
            matched_text: m.matched_text,
        })
    }

    /// The `k` best matches for `text`, best first (context for the LLM).
    pub fn top(&self, text: &str, k: usize) -> Vec<FaqHit<'_>> {
        self.index
            .top(text, k)
            .into_iter()
            .map(|m| FaqHit {
                item: &self.items[m.id],
                confidence: m.confidence,
                matched_text: m.matched_text,
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
