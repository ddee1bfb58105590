//! Both migration folders hold the same migrations, so the backends cannot drift.

use std::collections::BTreeSet;

fn names(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn both_migration_folders_hold_the_same_file_names() {
    let pg = names("postgres");
    let lite = names("sqlite");
    assert!(!pg.is_empty());
    assert_eq!(pg, lite);
}

#[test]
fn every_migration_can_be_reverted() {
    for dir in ["postgres", "sqlite"] {
        let all = names(dir);
        for up in all.iter().filter(|n| n.ends_with(".up.sql")) {
            let down = up.replace(".up.sql", ".down.sql");
            assert!(all.contains(&down), "{dir}/{up} has no {down}");
        }
    }
}
