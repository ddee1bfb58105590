//! The purge delay parley sets, and the environment's precedence over it. Each case runs
//! in a child process (this test binary, re-run with one test selected), because
//! mimalloc reads its environment once per process.

use std::process::Command;

#[global_allocator]
static ALLOCATOR: parley_alloc::MiMalloc = parley_alloc::MiMalloc;

/// Run in a child: prints the delay before and after `keep_freed_memory`.
#[test]
fn child_report() {
    if std::env::var_os("PARLEY_ALLOC_CHILD").is_none() {
        return;
    }
    let before = parley_alloc::purge_delay_ms();
    parley_alloc::keep_freed_memory();
    println!("delay {before} {}", parley_alloc::purge_delay_ms());
}

fn child(env: &[(&str, &str)]) -> (i64, i64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_report", "--nocapture", "--test-threads=1"])
        .env_remove("MIMALLOC_PURGE_DELAY")
        .env_remove("MIMALLOC_RESET_DELAY")
        .env("PARLEY_ALLOC_CHILD", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.split_once("delay ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no report in {text}"));
    let mut parts = line.split(' ').map(|n| n.parse::<i64>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

#[test]
fn freed_memory_is_kept_by_default() {
    let (before, after) = child(&[]);
    assert_eq!(before, 1000, "mimalloc 3's own default");
    assert_eq!(after, -1, "kept: never purged");
}

#[test]
fn the_environment_wins() {
    assert_eq!(child(&[("MIMALLOC_PURGE_DELAY", "250")]), (250, 250));
}
