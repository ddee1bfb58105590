//! Answer-quality evaluation: the matcher against a plain BM25 baseline on four
//! hand-made tenant FAQ sets. `cargo test --test eval -- --nocapture` prints the table;
//! the assertions are only sane floors. Knobs are tuned on `DEV` alone (see the ignored
//! `tune_on_dev`); `HELD_OUT` is only ever reported.

mod eval_data;

use std::collections::HashMap;

use eval_data::queries::{DEV, HELD_OUT, Labelled, NONE};
use eval_data::{Faq, TENANTS};
use parley::faq::{FaqDoc, FaqIndex, Tuning, normalize};

/// Baseline BM25 parameters, grid-searched on `DEV` by `tune_on_dev`.
const BASELINE_K1: f64 = 2.0;
const BASELINE_B: f64 = 0.5;

fn docs(faqs: &[Faq]) -> Vec<FaqDoc<&'static str>> {
    faqs.iter()
        .map(|&(id, question, examples, category)| FaqDoc {
            id,
            question: question.to_string(),
            examples: examples.iter().map(|e| e.to_string()).collect(),
            category: Some(category.to_string()),
            priority: 0,
        })
        .collect()
}

/// Plain BM25 over question + examples, same tokenizer and stop words, no stemming
/// and no typo tolerance.
struct Bm25 {
    ids: Vec<&'static str>,
    postings: HashMap<String, Vec<(usize, f64)>>,
    norm: Vec<f64>,
    k1: f64,
}

fn plain_tokens(text: &str) -> Vec<String> {
    normalize::words(text)
        .into_iter()
        .filter(|w| !normalize::is_stop_word(w))
        .collect()
}

impl Bm25 {
    fn build(faqs: &[Faq], k1: f64, b: f64) -> Bm25 {
        let mut postings: HashMap<String, Vec<(usize, f64)>> = HashMap::new();
        let mut lens = Vec::new();
        for (d, (_, question, examples, _)) in faqs.iter().enumerate() {
            let text = std::iter::once(*question)
                .chain(examples.iter().copied())
                .collect::<Vec<_>>()
                .join(" ");
            let tokens = plain_tokens(&text);
            lens.push(tokens.len() as f64);
            for t in tokens {
                let list = postings.entry(t).or_default();
                match list.last_mut() {
                    Some((doc, tf)) if *doc == d => *tf += 1.0,
                    _ => list.push((d, 1.0)),
                }
            }
        }
        let avg = lens.iter().sum::<f64>() / lens.len() as f64;
        let norm = lens.iter().map(|l| k1 * (1.0 - b + b * l / avg)).collect();
        Bm25 {
            ids: faqs.iter().map(|f| f.0).collect(),
            postings,
            norm,
            k1,
        }
    }

    fn best(&self, query: &str) -> Option<(&'static str, f64)> {
        let n = self.ids.len() as f64;
        let mut scores = vec![0.0; self.ids.len()];
        let mut terms = plain_tokens(query);
        terms.sort();
        terms.dedup();
        for t in terms {
            let Some(list) = self.postings.get(&t) else {
                continue;
            };
            let df = list.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(d, tf) in list {
                scores[d] += idf * tf * (self.k1 + 1.0) / (tf + self.norm[d]);
            }
        }
        let (d, &s) = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))?;
        (s > 0.0).then_some((self.ids[d], s))
    }
}

/// One answered (or unanswered) message.
struct Outcome {
    score: f64,
    correct: bool,
    in_scope: bool,
}

fn run(
    set: &[Labelled],
    answer: impl Fn(&str, &str) -> Option<(&'static str, f64)>,
) -> Vec<Outcome> {
    set.iter()
        .map(|&(tenant, label, text)| {
            let got = answer(tenant, text);
            Outcome {
                score: got.map_or(0.0, |g| g.1),
                correct: label != NONE && got.is_some_and(|g| g.0 == label),
                in_scope: label != NONE,
            }
        })
        .collect()
}

fn ours(set: &[Labelled], tuning: Tuning) -> Vec<Outcome> {
    let indexes: HashMap<&str, FaqIndex<&'static str>> = TENANTS
        .iter()
        .map(|&(name, faqs)| (name, FaqIndex::build_tuned(docs(faqs), tuning)))
        .collect();
    run(set, |tenant, text| {
        indexes[tenant].best(text).map(|m| (m.id, m.confidence))
    })
}

fn baseline(set: &[Labelled], k1: f64, b: f64) -> Vec<Outcome> {
    let indexes: HashMap<&str, Bm25> = TENANTS
        .iter()
        .map(|&(name, faqs)| (name, Bm25::build(faqs, k1, b)))
        .collect();
    run(set, |tenant, text| indexes[tenant].best(text))
}

fn top1(outcomes: &[Outcome]) -> f64 {
    let in_scope = outcomes.iter().filter(|o| o.in_scope).count();
    outcomes.iter().filter(|o| o.correct).count() as f64 / in_scope as f64
}

/// Share of in-scope messages answered correctly while precision stays >= `target`:
/// the longest prefix by descending score (never splitting ties) that is precise enough.
fn coverage_at(outcomes: &[Outcome], target: f64) -> f64 {
    let mut sorted: Vec<&Outcome> = outcomes.iter().filter(|o| o.score > 0.0).collect();
    sorted.sort_by(|a, b| b.score.total_cmp(&a.score));
    let (mut right, mut best) = (0usize, 0usize);
    for (i, o) in sorted.iter().enumerate() {
        right += usize::from(o.correct);
        let boundary = sorted.get(i + 1).is_none_or(|next| next.score < o.score);
        if boundary && right as f64 >= target * (i + 1) as f64 {
            best = right;
        }
    }
    best as f64 / outcomes.iter().filter(|o| o.in_scope).count() as f64
}

/// (precision, correct answers as a share of in-scope messages) when answering only
/// at score >= `threshold`.
fn at_threshold(outcomes: &[Outcome], threshold: f64) -> (f64, f64) {
    let answered: Vec<&Outcome> = outcomes.iter().filter(|o| o.score >= threshold).collect();
    let right = answered.iter().filter(|o| o.correct).count() as f64;
    let in_scope = outcomes.iter().filter(|o| o.in_scope).count() as f64;
    (right / answered.len().max(1) as f64, right / in_scope)
}

/// Off-topic messages: (mean score, share scoring <= 0.1, share scoring >= 0.5).
fn off_topic(outcomes: &[Outcome]) -> (f64, f64, f64) {
    let scores: Vec<f64> = outcomes
        .iter()
        .filter(|o| !o.in_scope)
        .map(|o| o.score)
        .collect();
    let share = |keep: fn(f64) -> bool| {
        scores.iter().filter(|&&s| keep(s)).count() as f64 / scores.len() as f64
    };
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    (mean, share(|s| s <= 0.1), share(|s| s >= 0.5))
}

fn row(set: &str, system: &str, outcomes: &[Outcome], calibrated: bool) -> String {
    let head = format!(
        "{set:<9}{system:<6}{:>6.1}%{:>9.1}%",
        100.0 * top1(outcomes),
        100.0 * coverage_at(outcomes, 0.95)
    );
    if !calibrated {
        return format!("{head}   (raw BM25 scores have no fixed scale)");
    }
    let (mean, low, high) = off_topic(outcomes);
    let (precision, correct) = at_threshold(outcomes, 0.5);
    format!(
        "{head}{mean:>8.2}{:>7.0}%{:>6.0}%{:>9.1}%{:>8.1}%",
        100.0 * low,
        100.0 * high,
        100.0 * precision,
        100.0 * correct
    )
}

#[test]
fn matcher_beats_plain_bm25_and_keeps_off_topic_low() {
    println!("\n{:31}off-topic conf      at threshold 0.5", "");
    println!("set      system top-1  ans@95%P    mean  <=0.1  >=0.5  precision  correct");
    println!("{}", "-".repeat(74));
    let mut results = Vec::new();
    for (name, set) in [("dev", DEV), ("held-out", HELD_OUT)] {
        let mine = ours(set, Tuning::default());
        let base = baseline(set, BASELINE_K1, BASELINE_B);
        println!("{}", row(name, "faq", &mine, true));
        println!("{}", row(name, "bm25", &base, false));
        let sweep: Vec<String> = [0.3, 0.5, 0.7, 0.9]
            .iter()
            .map(|&t| {
                let (p, c) = at_threshold(&mine, t);
                format!("{t}: {:.0}%/{:.0}%", 100.0 * p, 100.0 * c)
            })
            .collect();
        println!("  faq precision/correct by threshold  {}", sweep.join("  "));
        results.push((mine, base));
    }
    let count = |s: &[Labelled]| {
        (
            s.iter().filter(|q| q.1 != NONE).count(),
            s.iter().filter(|q| q.1 == NONE).count(),
        )
    };
    println!(
        "dev: {:?} held-out: {:?} (in-scope, off-topic) messages",
        count(DEV),
        count(HELD_OUT)
    );
    let (mine, base) = &results[1];
    assert!(
        top1(mine) >= top1(base),
        "matcher must not lose to plain BM25 on top-1"
    );
    assert!(
        coverage_at(mine, 0.95) >= coverage_at(base, 0.95),
        "nor on coverage at 95% precision"
    );
    assert!(top1(mine) >= 0.8, "top-1 floor");
    let (mean, low, _) = off_topic(mine);
    assert!(
        mean <= 0.2 && low >= 0.5,
        "off-topic messages must score low: mean {mean}, share <= 0.1: {low}"
    );
}
#[test]
fn print_confidence_examples() {
    let index = FaqIndex::build(docs(TENANTS[0].1));
    let queries = [
        "What are your opening hours?",
        "what r ur opening hours",
        "hi, when are you open on saturday?",
        "how much do you charge for a service",
        "do u fix flat tyers",
        "can I pay with cash",
        "how long for repairs on an ebike",
        "do you sell skateboards",
        "what's the capital of australia",
    ];
    for query in queries {
        let (id, conf, text) = index.best(query).map_or(("-", 0.0, String::new()), |m| {
            (m.id, m.confidence, m.matched_text)
        });
        println!("| {query} | {conf:.2} | {id} | {text} |");
    }
}
