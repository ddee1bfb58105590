//! Escalation by keywords: which of a tenant's escalation categories a customer's
//! message names. The three default categories have word lists; any other category
//! matches its own name. Words are compared after stemming, so "refunds" and
//! "refunded" count as "refund".

use crate::faq::normalize::words;
use crate::faq::stem;

/// Phrases that put a message in one of the default categories.
fn keywords(category: &str) -> &'static [&'static str] {
    match category {
        "refund" => &[
            "refund",
            "money back",
            "chargeback",
            "reimburse",
            "reimbursement",
            "reembolso",
            "remboursement",
        ],
        "complaint" => &[
            "complaint",
            "complain",
            "unacceptable",
            "disgusting",
            "terrible service",
            "awful service",
            "speak to a manager",
            "talk to a manager",
            "your manager",
            "reclamacion",
            "reclamation",
        ],
        "emergency" => &[
            "emergency",
            "urgent",
            "ambulance",
            "fire",
            "injured",
            "injury",
            "bleeding",
            "accident",
            "gas leak",
            "flood",
            "emergencia",
            "urgence",
        ],
        _ => &[],
    }
}

fn stems(text: &str) -> Vec<String> {
    stems_of(&words(text))
}

fn stems_of(words: &[String]) -> Vec<String> {
    words.iter().map(|w| stem(w)).collect()
}

fn contains_phrase(haystack: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && haystack.windows(phrase.len()).any(|w| w == phrase)
}

/// The default categories' phrases, stemmed once: every message is checked against
/// them, and stemming them per message was ~3 % of the server's CPU under load.
fn keyword_stems(category: &str) -> &'static [Vec<String>] {
    /// Each default category with its phrases, each phrase as its stems.
    type Stemmed = Vec<(&'static str, Vec<Vec<String>>)>;
    static STEMMED: std::sync::LazyLock<Stemmed> = std::sync::LazyLock::new(|| {
        ["refund", "complaint", "emergency"]
            .into_iter()
            .map(|c| (c, keywords(c).iter().map(|k| stems(k)).collect()))
            .collect()
    });
    STEMMED
        .iter()
        .find(|(c, _)| *c == category)
        .map_or(&[], |(_, phrases)| phrases.as_slice())
}

/// The first of `categories` (in the tenant's order) that a text names, if any, from
/// the text's words (`normalize::words`).
pub fn detect_words<'a>(words: &[String], categories: &'a [String]) -> Option<&'a str> {
    let said = stems_of(words);
    if said.is_empty() {
        return None;
    }
    categories.iter().map(String::as_str).find(|cat| {
        // A default category's name is one of its phrases (a test checks): only
        // another category's name is stemmed here, per message.
        match keyword_stems(cat) {
            [] => contains_phrase(&said, &stems(cat)),
            phrases => phrases.iter().any(|phrase| contains_phrase(&said, phrase)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect<'a>(text: &str, categories: &'a [String]) -> Option<&'a str> {
        detect_words(&words(text), categories)
    }

    fn defaults() -> Vec<String> {
        crate::domain::default_escalation_categories()
    }

    #[test]
    fn default_categories_are_found_by_their_words_and_inflections() {
        let c = defaults();
        assert_eq!(detect("I want my money back!", &c), Some("refund"));
        assert_eq!(detect("Were my orders REFUNDED yet?", &c), Some("refund"));
        assert_eq!(
            detect("I'd like to complain about the driver", &c),
            Some("complaint")
        );
        assert_eq!(detect("urgent: there is a gas leak", &c), Some("emergency"));
    }

    #[test]
    fn a_default_category_name_is_one_of_its_own_phrases() {
        for c in defaults() {
            assert!(keyword_stems(&c).contains(&stems(&c)), "{c}");
        }
    }

    #[test]
    fn ordinary_questions_do_not_escalate() {
        let c = defaults();
        for q in [
            "What are your opening hours?",
            "Do you deliver to Berlin?",
            "fireplace prices",
            "",
        ] {
            assert_eq!(detect(q, &c), None, "{q}");
        }
    }

    #[test]
    fn only_the_tenants_categories_count_and_custom_ones_match_their_name() {
        let c = vec!["warranty".to_string()];
        assert_eq!(detect("I want a refund", &c), None);
        assert_eq!(
            detect("is this covered by the warranties?", &c),
            Some("warranty")
        );
    }
}
