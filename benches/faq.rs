//! FAQ matcher latency: `cargo bench --bench faq` (a printout, no assertions:
//! machines differ).

#[allow(dead_code)] // Only the FAQ sets are used here, not the labelled queries.
#[path = "../tests/eval_data/mod.rs"]
mod eval_data;

use std::hint::black_box;
use std::time::Instant;

use eval_data::TENANTS;
use parley::faq::{FaqDoc, FaqIndex};

fn tenant_docs(tenants: &[&str]) -> Vec<FaqDoc<usize>> {
    TENANTS
        .iter()
        .filter(|(name, _)| tenants.contains(name))
        .flat_map(|(_, faqs)| faqs.iter())
        .enumerate()
        .map(|(id, &(_, question, examples, category))| FaqDoc {
            id,
            question: question.to_string(),
            examples: examples.iter().map(|e| e.to_string()).collect(),
            category: Some(category.to_string()),
            priority: 0,
        })
        .collect()
}

/// `n` synthetic entries drawn from a few hundred made-up words, to size a big tenant.
fn synthetic_docs(n: usize) -> Vec<FaqDoc<usize>> {
    let syllables = [
        "ka", "lo", "mi", "ter", "san", "vo", "rin", "bel", "du", "pex", "gor", "ly",
    ];
    let word = |i: usize| {
        format!(
            "{}{}{}",
            syllables[i % 12],
            syllables[(i / 12) % 12],
            syllables[(i / 144) % 12]
        )
    };
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 600) as usize
    };
    let mut sentence = move || (0..6).map(|_| word(next())).collect::<Vec<_>>().join(" ") + "?";
    (0..n)
        .map(|id| FaqDoc {
            id,
            question: format!("how do I {}", sentence()),
            examples: vec![sentence(), sentence()],
            category: None,
            priority: 0,
        })
        .collect()
}

fn time_queries(label: &str, docs: Vec<FaqDoc<usize>>, queries: &[&str]) {
    let count = docs.len();
    let started = Instant::now();
    let index = FaqIndex::build(docs);
    let build = started.elapsed();
    println!("{label}: {count} docs, built in {build:?}");
    for query in queries {
        // Debug builds are ~20x slower; keep plain `cargo test` quick.
        let rounds = if cfg!(debug_assertions) { 200 } else { 20_000 };
        let started = Instant::now();
        for _ in 0..rounds {
            black_box(index.best(black_box(query)));
        }
        let per_query = started.elapsed() / rounds;
        println!("  {per_query:>9.2?}  {query}");
    }
}

fn main() {
    let queries = [
        "What are your opening hours?",
        "hi, quick question: when do you open on saturdays?",
        "do u fix flat tyers on mountain bikes",
        "Hello, I bought a bike from you last month and the gears are slipping, is that covered?",
        "what's the capital of australia",
    ];
    time_queries("bike tenant", tenant_docs(&["bike"]), &queries);
    time_queries(
        "all four tenants",
        tenant_docs(&["bike", "clinic", "resto", "telco"]),
        &queries,
    );
    let mut big = synthetic_docs(1_960);
    big.extend(
        tenant_docs(&["bike", "clinic", "resto", "telco"])
            .into_iter()
            .map(|mut d| {
                d.id += 10_000;
                d
            }),
    );
    time_queries("synthetic + tenants", big, &queries);
}
