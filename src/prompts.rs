//! The prompts parley sends to a tenant's LLM: the default system prompt and the
//! classifier (output format) prompt, embedded from `prompts/`, and the renderer that
//! fills in a tenant's variables. A tenant's published prompt versions replace them.

use std::collections::HashMap;

/// The default system prompt (`prompts/system.md`).
pub const DEFAULT_SYSTEM: &str = include_str!("../prompts/system.md");
/// The default classifier prompt (`prompts/classifier.md`): the JSON the model returns.
pub const DEFAULT_CLASSIFIER: &str = include_str!("../prompts/classifier.md");

/// The variables a prompt may use, written `{name}` in its text.
pub const VARIABLES: [&str; 8] = [
    "assistant_name",
    "business_name",
    "timezone",
    "local_time",
    "faq_context",
    "categories",
    "max_response_length",
    "tone",
];

/// Replaces every `{name}` whose name is in `vars`; other braces stay as written, so
/// a prompt can show JSON examples.
pub fn render(template: &str, vars: &HashMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}');
        match close.and_then(|c| vars.get(&after[..c]).map(|v| (c, v))) {
            Some((c, value)) => {
                out.push_str(value);
                rest = &after[c + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_variables_are_filled_and_json_braces_are_kept() {
        let vars = HashMap::from([("business_name", "Acme".to_string())]);
        assert_eq!(
            render("Hi from {business_name}: {\"answer\": 1} {unknown}", &vars),
            "Hi from Acme: {\"answer\": 1} {unknown}"
        );
    }

    #[test]
    fn the_embedded_prompts_use_only_known_variables() {
        for p in [DEFAULT_SYSTEM, DEFAULT_CLASSIFIER] {
            let vars: HashMap<&str, String> =
                VARIABLES.iter().map(|v| (*v, String::new())).collect();
            let rendered = render(p, &vars);
            for v in VARIABLES {
                assert!(!rendered.contains(&format!("{{{v}}}")));
            }
        }
        assert!(DEFAULT_CLASSIFIER.contains("{categories}"));
        assert!(DEFAULT_SYSTEM.contains("{faq_context}"));
    }
}
