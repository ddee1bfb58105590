//! The VFS parley's SQLite hot writer opens its connection through:
//! a commit's log frames reach the file in a few large writes, and the database it leaves is the
//! one SQLite's default VFS would have left: readers on the default VFS see every
//! commit, a transaction larger than the page cache commits whole, and a copy taken in
//! mid-run (as a crash leaves the files) recovers every commit.

use rusqlite::{Connection, OpenFlags, params};
use sqlite_wal_batch::{wal_appends_on_this_thread, wal_writes_on_this_thread};
use std::path::{Path, PathBuf};

/// A new directory (removed when dropped) and a database path in it.
fn fresh() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    (dir, path)
}

fn open_batched(path: &Path) -> Connection {
    let vfs = sqlite_wal_batch::register().expect("the VFS registers");
    let db = Connection::open_with_flags_and_vfs(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        vfs,
    )
    .unwrap();
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k BLOB NOT NULL, v TEXT NOT NULL); \
         CREATE INDEX IF NOT EXISTS t_k ON t (k);",
    )
    .unwrap();
    db
}

fn open_plain(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap()
}

/// Rows whose keys scatter over the index, as the message loop's customer keys do.
fn insert_rows(db: &Connection, from: i64, n: i64) {
    let tx = db.unchecked_transaction().unwrap();
    {
        let mut st = tx
            .prepare_cached("INSERT INTO t (id, k, v) VALUES (?1, ?2, ?3)")
            .unwrap();
        for i in from..from + n {
            let k = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as i64)).to_be_bytes();
            st.execute(params![i, &k[..], format!("row {i} {}", "x".repeat(200))])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

fn summary(db: &Connection) -> (i64, i64) {
    db.query_row("SELECT count(*), coalesce(sum(id), 0) FROM t", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap()
}

/// Rows 0..n, each once.
fn assert_rows(db: &Connection, n: i64) {
    assert_eq!(summary(db), (n, (0..n).sum()));
}

fn integrity(db: &Connection) -> String {
    db.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_commits_log_frames_reach_the_file_in_a_few_large_writes() {
    let (_dir, path) = fresh();
    let db = open_batched(&path);
    insert_rows(&db, 0, 10);
    let (writes, appends) = (wal_writes_on_this_thread(), wal_appends_on_this_thread());
    insert_rows(&db, 10, 2000);
    let writes = wal_writes_on_this_thread() - writes;
    let appends = wal_appends_on_this_thread() - appends;
    // Two calls a frame from SQLite (header, page); ~2000 rows of 200 bytes and their
    // index entries are well over a hundred pages.
    assert!(appends > 200, "SQLite appended {appends} times");
    // The default VFS takes at most 124 KiB a call: ~30 frames, 60 appends.
    assert!(
        writes * 50 <= appends,
        "{appends} appends reached the file in {writes} writes"
    );
    assert_rows(&db, 2010);
}

#[test]
fn readers_on_the_default_vfs_see_every_commit() {
    let (_dir, path) = fresh();
    let writer = open_batched(&path);
    let reader = open_plain(&path);
    let mut expected = 0;
    for round in 0..20 {
        insert_rows(&writer, round * 300, 300);
        expected += 300;
        assert_eq!(summary(&reader).0, expected, "after commit {round}");
        if round % 5 == 4 {
            // The reader copies the log back into the database file meanwhile.
            reader
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                .unwrap();
        }
    }
    assert_rows(&reader, 6000);
    assert_eq!(integrity(&reader), "ok");
}

#[test]
fn a_transaction_larger_than_the_page_cache_commits_whole() {
    let (_dir, path) = fresh();
    let db = open_batched(&path);
    insert_rows(&db, 0, 100);
    // A ten-page cache spills pages to the log in mid-transaction and writes some of
    // them again before the commit (SQLite then rewrites frames in place and their
    // checksums): writes that do not continue the gathered run.
    db.execute_batch("PRAGMA cache_size = 10").unwrap();
    let tx = db.unchecked_transaction().unwrap();
    for pass in 0..3 {
        tx.execute(
            "UPDATE t SET v = v || ?1 WHERE id % 3 = ?2",
            params![format!("-{pass}"), pass],
        )
        .unwrap();
        for i in 0..400 {
            let id = 1000 + pass * 400 + i;
            tx.execute(
                "INSERT INTO t (id, k, v) VALUES (?1, randomblob(8), ?2)",
                params![id, "y".repeat(300)],
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
    let reader = open_plain(&path);
    assert_eq!(summary(&reader).0, 1300);
    let updated: i64 = reader
        .query_row(
            "SELECT count(*) FROM t WHERE id < 100 AND v LIKE '%-' || (id % 3)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(updated, 100);
    assert_eq!(integrity(&reader), "ok");
}

#[test]
fn files_copied_in_mid_run_recover_every_commit() {
    let (dir, path) = fresh();
    let db = open_batched(&path);
    for round in 0..5 {
        insert_rows(&db, round * 500, 500);
    }
    // As a crash leaves them: the database and its log, no shared-memory index, the
    // writer still open.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(&path, copy.path().join("db.sqlite")).unwrap();
    std::fs::copy(
        dir.path().join("db.sqlite-wal"),
        copy.path().join("db.sqlite-wal"),
    )
    .unwrap();
    let recovered = open_plain(&copy.path().join("db.sqlite"));
    assert_rows(&recovered, 2500);
    assert_eq!(integrity(&recovered), "ok");
    drop(db);
}

#[test]
fn a_database_reopened_through_the_vfs_keeps_its_rows() {
    let (_dir, path) = fresh();
    {
        let db = open_batched(&path);
        insert_rows(&db, 0, 700);
    }
    let db = open_batched(&path);
    insert_rows(&db, 700, 300);
    assert_rows(&db, 1000);
    assert_eq!(integrity(&db), "ok");
}

#[test]
fn a_commit_whose_frames_cannot_be_written_fails_and_leaves_nothing_behind() {
    let (_dir, path) = fresh();
    let db = open_batched(&path);
    insert_rows(&db, 0, 300);
    let reader = open_plain(&path);
    assert_eq!(summary(&reader).0, 300);

    sqlite_wal_batch::fail_next_write_on_this_thread();
    let tx = db.unchecked_transaction().unwrap();
    tx.execute("INSERT INTO t (id, k, v) VALUES (1000, x'00', 'lost')", [])
        .unwrap();
    let err = tx
        .commit()
        .expect_err("the commit reports the failed write");
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DiskFull),
        "{err}"
    );
    // SQLite rolls the transaction back; no reader sees any of it.
    assert!(db.is_autocommit());
    assert_rows(&reader, 300);

    // The next transaction writes over the failed one's place in the log.
    insert_rows(&db, 300, 200);
    assert_rows(&reader, 500);
    assert_eq!(integrity(&reader), "ok");
    drop(db);
    let reopened = open_plain(&path);
    assert_rows(&reopened, 500);
}
