//! Behavioural tests of the public matcher API.

use super::*;

fn doc(id: u32, question: &str, examples: &[&str]) -> FaqDoc<u32> {
    FaqDoc {
        id,
        question: question.to_string(),
        examples: examples.iter().map(|e| e.to_string()).collect(),
        category: None,
        priority: 0,
    }
}

fn bike_shop() -> FaqIndex<u32> {
    FaqIndex::build(vec![
        doc(1, "What are your opening hours?", &["When are you open?"]),
        doc(2, "Where is the shop located?", &["What is your address?"]),
        doc(3, "Do you fix flat tyres?", &["Can you repair a puncture?"]),
        doc(
            4,
            "How much does a bike service cost?",
            &["What is the price of a tune-up?"],
        ),
        doc(
            5,
            "Do you rent bikes?",
            &["Can I hire a bicycle for the day?"],
        ),
        doc(
            6,
            "Do you sell electric bikes?",
            &["Do you have e-bikes in stock?"],
        ),
    ])
}

fn confidence_of(index: &FaqIndex<u32>, query: &str) -> (Option<u32>, f64) {
    index
        .best(query)
        .map_or((None, 0.0), |m| (Some(m.id), m.confidence))
}

#[test]
fn an_exact_question_in_other_case_and_punctuation_scores_one() {
    let m = bike_shop().best("  what ARE your opening-hours ").unwrap();
    assert_eq!((m.id, m.confidence), (1, 1.0));
    assert_eq!(m.matched_text, "What are your opening hours?");
}

#[test]
fn an_example_phrasing_counts_as_exact_too() {
    let m = bike_shop().best("can you repair a puncture").unwrap();
    assert_eq!(
        (m.id, m.confidence, m.matched_text.as_str()),
        (3, 1.0, "Can you repair a puncture?")
    );
}

#[test]
fn a_close_paraphrase_scores_high_but_below_one() {
    let (id, conf) = confidence_of(&bike_shop(), "hi, when do you open?");
    assert_eq!(id, Some(1));
    assert!((0.7..1.0).contains(&conf), "{conf}");
}

#[test]
fn a_plural_and_a_typo_still_match_the_right_faq() {
    let index = bike_shop();
    assert_eq!(confidence_of(&index, "do you fix flat tyre").0, Some(3));
    let (id, conf) = confidence_of(&index, "do u rent bicyles");
    assert_eq!(id, Some(5));
    assert!(conf >= 0.5, "{conf}");
}

#[test]
fn a_typo_earns_less_than_the_correct_spelling() {
    let index = bike_shop();
    let right = confidence_of(&index, "do you sell electric bikes today").1;
    let typo = confidence_of(&index, "do you sell electirc bikes today").1;
    assert!(typo < right && typo > 0.0, "{typo} vs {right}");
}

#[test]
fn partial_overlap_scores_in_the_middle() {
    let (id, conf) = confidence_of(&bike_shop(), "do you sell skateboards or scooters for kids");
    assert_eq!(id, Some(6));
    assert!((0.1..0.7).contains(&conf), "{conf}");
}

#[test]
fn unrelated_text_scores_near_zero() {
    let index = bike_shop();
    for query in [
        "what's the capital of australia",
        "tell me a joke",
        "what is the meaning of life",
    ] {
        let (_, conf) = confidence_of(&index, query);
        assert!(conf <= 0.1, "{query}: {conf}");
    }
}

#[test]
fn question_words_separate_where_from_when() {
    let index = bike_shop();
    assert_eq!(confidence_of(&index, "where are you").0, Some(2));
    assert_eq!(confidence_of(&index, "when are you").0, Some(1));
}

#[test]
fn an_empty_index_or_empty_query_returns_none() {
    let empty: FaqIndex<u32> = FaqIndex::build(Vec::new());
    assert!(empty.is_empty());
    assert_eq!(empty.len(), 0);
    assert!(empty.best("opening hours").is_none());
    assert!(empty.top("opening hours", 3).is_empty());
    let index = bike_shop();
    assert_eq!(index.len(), 6);
    for query in ["", "   ", "?!...", "🙂🙂"] {
        assert!(index.best(query).is_none(), "{query:?}");
        assert!(index.top(query, 5).is_empty(), "{query:?}");
    }
    assert!(index.top("opening hours", 0).is_empty());
}

#[test]
fn diacritics_and_emoji_do_not_panic() {
    let index = FaqIndex::build(vec![
        doc(1, "Où est le café?", &[]),
        doc(2, "Größe der Fahrräder", &["Straße"]),
        doc(3, "营业时间是什么？", &[]),
    ]);
    assert_eq!(index.best("ou est le CAFE 😀").map(|m| m.id), Some(1));
    assert_eq!(
        index
            .best("grosse der fahrrader")
            .map(|m| (m.id, m.confidence)),
        Some((2, 1.0))
    );
    assert_eq!(index.best("strasse").map(|m| m.id), Some(2));
    assert_eq!(index.best("请问营业时间").map(|m| m.id), Some(3));
    for query in [
        "🚲🔧💥",
        "e\u{301}\u{301}\u{301}",
        "\u{200d}\u{fe0f}",
        "ﷺ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 Ꙭ",
    ] {
        let _ = index.best(query);
        let _ = index.top(query, 3);
    }
}

#[test]
fn top_returns_one_match_per_id_most_confident_first() {
    let index = FaqIndex::build(vec![
        doc(7, "Do you rent bikes?", &[]),
        doc(7, "Bike rental prices", &[]),
        doc(8, "Do you sell bikes?", &[]),
        doc(9, "Do you repair bikes?", &[]),
    ]);
    let top = index.top("how much to rent a bike", 10);
    let ids: Vec<u32> = top.iter().map(|m| m.id).collect();
    assert_eq!(ids[0], 7);
    assert_eq!(ids.iter().filter(|&&id| id == 7).count(), 1);
    assert!(top.windows(2).all(|w| w[0].confidence >= w[1].confidence));
    assert_eq!(index.top("how much to rent a bike", 1).len(), 1);
}

#[test]
fn priority_breaks_ties_only_between_equal_confidences() {
    let mut docs = vec![
        doc(1, "Do you rent bikes?", &[]),
        doc(2, "Do you rent bikes?", &[]),
    ];
    docs[1].priority = 5;
    let index = FaqIndex::build(docs);
    assert_eq!(index.best("do you rent bikes").map(|m| m.id), Some(2));
    assert_eq!(index.best("rent bikes please").map(|m| m.id), Some(2));
    assert_eq!(
        index
            .top("rent bikes please", 2)
            .iter()
            .map(|m| m.id)
            .collect::<Vec<_>>(),
        [2, 1]
    );

    let mut docs = vec![
        doc(1, "Do you rent bikes?", &[]),
        doc(2, "Do you rent bikes for a week?", &[]),
    ];
    docs[1].priority = 5;
    assert_eq!(
        FaqIndex::build(docs)
            .best("do you rent bikes?")
            .map(|m| m.id),
        Some(1)
    );
}

#[test]
fn the_index_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FaqIndex<u64>>();
}

/// A tiny deterministic generator (xorshift), so the property test needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a",
            "e",
            "bike",
            "bikes",
            "open",
            " ",
            " ",
            "  ",
            "?",
            "!",
            "'",
            "-",
            "é",
            "ß",
            "Ü",
            "ñ",
            "\u{301}",
            "🙂",
            "🚲",
            "👨\u{200d}👩",
            "营",
            "业",
            "时",
            "間",
            "한",
            "ы",
            "ـ",
            "\u{0}",
            "\t",
            "\n",
            "9",
            "42",
            "ǅ",
            "İ",
            "ﬁ",
            "what",
            "where",
            "the",
            "hours",
        ];
        let len = (self.next() % 24) as usize;
        (0..len)
            .map(|_| PIECES[(self.next() % PIECES.len() as u64) as usize])
            .collect()
    }
}

#[test]
fn best_never_panics_and_confidence_stays_in_range() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..40 {
        let docs = (0..(round % 7) as u32)
            .map(|id| FaqDoc {
                id,
                question: rng.text(),
                examples: (0..rng.next() % 3).map(|_| rng.text()).collect(),
                category: Some(rng.text()),
                priority: (rng.next() % 3) as i64 - 1,
            })
            .collect();
        let index = FaqIndex::build(docs);
        for _ in 0..100 {
            let query = rng.text();
            if let Some(m) = index.best(&query) {
                assert!(
                    m.confidence.is_finite() && (0.0..=1.0).contains(&m.confidence),
                    "{query:?}"
                );
            }
            let top = index.top(&query, 3);
            assert!(top.len() <= 3);
            assert!(
                top.iter()
                    .all(|m| m.confidence.is_finite() && (0.0..=1.0).contains(&m.confidence))
            );
        }
    }
}
