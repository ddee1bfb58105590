//! The files the README points to stay valid.

#[test]
fn the_example_bundle_in_examples_is_valid() {
    let text =
        std::fs::read_to_string(format!("{}/examples/acme.json", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
    let b = parley::domain::bundle::parse_and_validate(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.profile.slug, "acme-bikes");
    assert_eq!(b.training.len(), 3);
    assert!(b.settings.quiet_hours.is_some());
}
