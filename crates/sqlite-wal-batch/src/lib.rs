//! A SQLite VFS over the platform's default one that gathers the frames a transaction
//! appends to its write-ahead log and hands them to the operating system in a few large
//! writes when the transaction commits.
//!
//! SQLite writes each WAL frame with two calls, its 24-byte header and then its page,
//! so a commit that dirtied 500 pages makes 1000 `pwrite` system calls. Through this
//! VFS it makes 17: one per 124 KiB, the most the default unix VFS writes in a call.
//! Nothing else changes: the files, their format, the locks and the shared-memory
//! index are the default VFS's own (every call but the WAL's appends is passed straight
//! on), so connections that use the default VFS, in this process or another, share the
//! database as before.
//!
//! Why it is as safe as writing frame by frame: a commit becomes visible to readers
//! only when SQLite updates the WAL index header in shared memory, after it has written
//! every frame. The gathered frames are written when the commit frame's page arrives
//! (its header carries the database size, which only a commit frame does), so before
//! that update, and a failed write fails the commit. Any other call on the WAL file (a
//! read, a sync, a truncation, its size, closing it) first writes what is gathered, as
//! does a write that does not continue the gathered run. As a backstop, the memory
//! barrier SQLite raises on the database file just before it publishes the new header
//! writes whatever the same thread still holds (SQLite runs a statement's file calls on
//! the thread that steps it); if that write fails, the process aborts rather than
//! publish frames that are not in the file. A crash loses only what a crash during the
//! commit loses anyway: the commit, which SQLite's recovery then ignores.
//!
//! Durability is unchanged: with `synchronous = NORMAL` SQLite does not sync the WAL at
//! a commit; with `FULL` it syncs after the commit frame, and the frames are written by
//! then.

use std::cell::Cell;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

/// The VFS's name, for `sqlite3_open_v2` (rusqlite: `Connection::open_with_flags_and_vfs`).
pub const NAME: &str = "wal-batch";
const C_NAME: &CStr = c"wal-batch";

/// A WAL frame's header: page number, database size after a commit (0 for any other
/// frame), salts and checksums.
const FRAME_HEADER: usize = 24;
/// Beyond this a transaction's frames are written before it commits.
const MAX_GATHERED: usize = 32 << 20;
/// The most the default unix VFS writes in one call (it masks a length with 0x1ffff):
/// 31 pages of 4 KiB.
const MAX_WRITE: usize = 0x1f000;

thread_local! {
    static WRITES: Cell<u64> = const { Cell::new(0) };
    static APPENDS: Cell<u64> = const { Cell::new(0) };
    static FAIL_NEXT: Cell<bool> = const { Cell::new(false) };
}

/// Write calls this thread made to WAL files through this VFS, one per chunk (at most
/// `MAX_WRITE` bytes) of gathered frames.
pub fn wal_writes_on_this_thread() -> u64 {
    WRITES.with(Cell::get)
}

/// Makes the next write of gathered frames on this thread fail as a full disk would
/// (`SQLITE_FULL`), without writing: for tests of what a failed commit leaves.
#[doc(hidden)]
pub fn fail_next_write_on_this_thread() {
    FAIL_NEXT.with(|f| f.set(true));
}

/// Write calls SQLite made on this thread to WAL files opened through this VFS.
pub fn wal_appends_on_this_thread() -> u64 {
    APPENDS.with(Cell::get)
}

/// Registers the VFS (once; later calls return the first result), over the default VFS
/// as it is at the first call. It does not become the default.
pub fn register() -> Result<&'static str, String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(register_once).clone().map(|()| NAME)
}

fn register_once() -> Result<(), String> {
    // SAFETY: sqlite3_vfs_find is thread-safe once SQLite is initialised (it
    // initialises it); the default VFS lives for the whole process.
    let real = unsafe { ffi::sqlite3_vfs_find(ptr::null()) };
    if real.is_null() {
        return Err("SQLite has no default VFS".into());
    }
    // SAFETY: `real` is SQLite's default VFS, never freed.
    let r = unsafe { &*real };
    let vfs = Box::leak(Box::new(ffi::sqlite3_vfs {
        iVersion: r.iVersion.min(2),
        szOsFile: (REAL_AT + r.szOsFile as usize) as c_int,
        mxPathname: r.mxPathname,
        pNext: ptr::null_mut(),
        zName: C_NAME.as_ptr(),
        pAppData: real.cast(),
        xOpen: Some(x_open),
        xDelete: Some(x_delete),
        xAccess: Some(x_access),
        xFullPathname: Some(x_full_pathname),
        // These take the VFS pointer and ignore it (the unix VFS's `NotUsed`).
        xDlOpen: r.xDlOpen,
        xDlError: r.xDlError,
        xDlSym: r.xDlSym,
        xDlClose: r.xDlClose,
        xRandomness: r.xRandomness,
        xSleep: r.xSleep,
        xCurrentTime: r.xCurrentTime,
        xGetLastError: r.xGetLastError,
        xCurrentTimeInt64: r.xCurrentTimeInt64,
        xSetSystemCall: None,
        xGetSystemCall: None,
        xNextSystemCall: None,
    }));
    // SAFETY: `vfs` is leaked, so it outlives every connection that names it.
    let rc = unsafe { ffi::sqlite3_vfs_register(vfs, 0) };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(format!("sqlite3_vfs_register failed with code {rc}"))
    }
}

/// What a WAL file has gathered and not yet written.
struct Gathered {
    bytes: Vec<u8>,
    /// The file offset of `bytes[0]`.
    at: i64,
    /// The last write was a commit frame's header: its page ends the transaction.
    commit_header: bool,
}

/// An open file: ours first, the default VFS's right after it (in the memory SQLite
/// allocates, `szOsFile` bytes).
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    /// Non-null for a WAL file.
    wal: *mut Gathered,
}

const REAL_AT: usize = std::mem::size_of::<File>().next_multiple_of(16);

thread_local! {
    /// The WAL file this thread has gathered frames in, if any.
    static HOLDING: Cell<*mut File> = const { Cell::new(ptr::null_mut()) };
}

fn real_vfs(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    // SAFETY: our VFS's pAppData is the default VFS (register_once).
    unsafe { (*vfs).pAppData.cast() }
}

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let real_vfs = real_vfs(vfs);
    let f = file.cast::<File>();
    // SAFETY: SQLite gives szOsFile bytes at `file`, aligned for any type; the default
    // VFS's part starts at REAL_AT.
    unsafe {
        let real = file.cast::<u8>().add(REAL_AT).cast::<ffi::sqlite3_file>();
        (*real).pMethods = ptr::null();
        ptr::write(
            f,
            File {
                base: ffi::sqlite3_file {
                    pMethods: ptr::null(),
                },
                real,
                wal: ptr::null_mut(),
            },
        );
        let Some(open) = (*real_vfs).xOpen else {
            return ffi::SQLITE_CANTOPEN;
        };
        let rc = open(real_vfs, name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            // Our methods stay unset, so SQLite will not close us: close theirs here.
            if let Some(close) = (*real).pMethods.as_ref().and_then(|m| m.xClose) {
                close(real);
            }
            return rc;
        }
        if flags & ffi::SQLITE_OPEN_WAL != 0 {
            (*f).wal = Box::into_raw(Box::new(Gathered {
                bytes: Vec::new(),
                at: 0,
                commit_header: false,
            }));
        }
        (*f).base.pMethods = &METHODS;
    }
    ffi::SQLITE_OK
}

/// The VFS's own methods passed on to the default VFS.
macro_rules! forward_vfs {
    ($name:ident, $field:ident, $missing:expr, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(vfs: *mut ffi::sqlite3_vfs $(, $arg: $ty)*) -> c_int {
            let r = real_vfs(vfs);
            // SAFETY: forwarded as given, to the default VFS.
            unsafe { (*r).$field.map_or($missing, |x| x(r $(, $arg)*)) }
        }
    };
}

forward_vfs!(x_delete, xDelete, ffi::SQLITE_IOERR_DELETE, (name: *const c_char, sync_dir: c_int));
forward_vfs!(x_access, xAccess, ffi::SQLITE_IOERR_ACCESS, (name: *const c_char, flags: c_int, out: *mut c_int));
forward_vfs!(x_full_pathname, xFullPathname, ffi::SQLITE_CANTOPEN, (name: *const c_char, n: c_int, out: *mut c_char));

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

/// The default VFS's file and methods under ours.
///
/// # Safety
/// `file` is a file opened by `x_open` and not yet closed.
unsafe fn real(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    // SAFETY: per the contract, `file` is a File whose `real` was opened successfully,
    // and a VFS's methods table lives as long as the VFS.
    unsafe {
        let real = (*file.cast::<File>()).real;
        (real, &*(*real).pMethods)
    }
}

/// Writes what `file` has gathered, if anything.
///
/// # Safety
/// `file` is a file opened by `x_open` and not yet closed, used by this thread only.
unsafe fn write_gathered(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: per the contract.
    unsafe {
        let f = file.cast::<File>();
        let Some(g) = (*f).wal.as_mut() else {
            return ffi::SQLITE_OK;
        };
        if g.bytes.is_empty() {
            return ffi::SQLITE_OK;
        }
        HOLDING.with(|h| {
            if h.get() == f {
                h.set(ptr::null_mut())
            }
        });
        let (real, m) = real(file);
        let Some(write) = m.xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        // The unix VFS writes at most 128 KiB - 1 a call (its `seekAndWriteFd`).
        let mut rc = ffi::SQLITE_OK;
        let mut at = g.at;
        let failing = FAIL_NEXT.with(|f| f.replace(false));
        for chunk in g.bytes.chunks(MAX_WRITE) {
            rc = match failing {
                true => ffi::SQLITE_FULL,
                false => write(real, chunk.as_ptr().cast(), chunk.len() as c_int, at),
            };
            WRITES.with(|w| w.set(w.get() + 1));
            if rc != ffi::SQLITE_OK {
                break;
            }
            at += chunk.len() as i64;
        }
        g.bytes.clear();
        g.commit_header = false;
        rc
    }
}

unsafe extern "C" fn x_write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amt: c_int,
    at: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite calls this with a file we opened and `amt` readable bytes at `data`;
    // `wal` is only borrowed between the calls that write it out.
    unsafe {
        let f = file.cast::<File>();
        let wal = (*f).wal;
        if wal.is_null() || amt <= 0 {
            let (real, m) = real(file);
            return m
                .xWrite
                .map_or(ffi::SQLITE_IOERR_WRITE, |w| w(real, data, amt, at));
        }
        APPENDS.with(|a| a.set(a.get() + 1));
        let n = amt as usize;
        let (len, from) = ((*wal).bytes.len(), (*wal).at);
        if len > 0 && (at != from + len as i64 || len + n > MAX_GATHERED) {
            let rc = write_gathered(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        if (*wal).bytes.is_empty() {
            (*wal).at = at;
            let held = HOLDING.with(|h| h.replace(f));
            if !held.is_null() && held != f {
                // Another WAL file on this thread (another connection): write its frames
                // now rather than keep two.
                let rc = write_gathered(held.cast());
                HOLDING.with(|h| h.set(f));
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
            }
        }
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), n);
        let g = &mut *wal;
        g.bytes.extend_from_slice(bytes);
        let ends_commit = g.commit_header;
        g.commit_header = n == FRAME_HEADER && bytes[4..8] != [0, 0, 0, 0];
        if ends_commit {
            return write_gathered(file);
        }
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes each file it opened once, and uses it no more.
    unsafe {
        let rc = write_gathered(file);
        let (real, m) = real(file);
        let closed = m.xClose.map_or(ffi::SQLITE_OK, |c| c(real));
        let f = file.cast::<File>();
        if !(*f).wal.is_null() {
            drop(Box::from_raw((*f).wal));
            (*f).wal = ptr::null_mut();
        }
        if rc != ffi::SQLITE_OK { rc } else { closed }
    }
}

unsafe extern "C" fn x_shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: the file held is open (closing it clears HOLDING) and this thread's.
    unsafe {
        let held = HOLDING.with(|h| h.get());
        if !held.is_null() && write_gathered(held.cast()) != ffi::SQLITE_OK {
            // SQLite is about to publish frames that are not in the file, and this call
            // cannot fail: stop here rather than let readers see a corrupt log.
            eprintln!("sqlite-wal-batch: writing the write-ahead log failed at a commit; aborting");
            std::process::abort();
        }
        let (real, m) = real(file);
        if let Some(b) = m.xShmBarrier {
            b(real)
        }
    }
}

/// Methods passed on as they are; `after writing` ones first write what is gathered.
macro_rules! forward {
    ($name:ident, $field:ident, $missing:expr, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        forward!(@ $name, $field, $missing, false, ($($arg: $ty),*) -> $ret);
    };
    (after writing $name:ident, $field:ident, $missing:expr, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        forward!(@ $name, $field, $missing, true, ($($arg: $ty),*) -> $ret);
    };
    (@ $name:ident, $field:ident, $missing:expr, $write_first:expr, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            // SAFETY: forwarded as given to the default VFS's file under ours.
            unsafe {
                if $write_first {
                    let rc = write_gathered(file);
                    if rc != ffi::SQLITE_OK {
                        return rc;
                    }
                }
                let (real, m) = real(file);
                match m.$field {
                    Some(x) => x(real $(, $arg)*),
                    None => $missing,
                }
            }
        }
    };
}

// Reading, resizing, syncing or sizing the log sees every frame handed to us first.
forward!(after writing x_read, xRead, ffi::SQLITE_IOERR_READ, (out: *mut c_void, amt: c_int, at: ffi::sqlite3_int64) -> c_int);
forward!(after writing x_truncate, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, (size: ffi::sqlite3_int64) -> c_int);
forward!(after writing x_sync, xSync, ffi::SQLITE_IOERR_FSYNC, (flags: c_int) -> c_int);
forward!(after writing x_file_size, xFileSize, ffi::SQLITE_IOERR_FSTAT, (out: *mut ffi::sqlite3_int64) -> c_int);
forward!(after writing x_file_control, xFileControl, ffi::SQLITE_NOTFOUND, (op: c_int, arg: *mut c_void) -> c_int);

forward!(x_lock, xLock, ffi::SQLITE_IOERR_LOCK, (level: c_int) -> c_int);
forward!(x_unlock, xUnlock, ffi::SQLITE_IOERR_UNLOCK, (level: c_int) -> c_int);
forward!(x_check_reserved_lock, xCheckReservedLock, ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, (out: *mut c_int) -> c_int);
forward!(x_sector_size, xSectorSize, 4096, () -> c_int);
forward!(x_device_characteristics, xDeviceCharacteristics, 0, () -> c_int);
forward!(x_shm_map, xShmMap, ffi::SQLITE_IOERR_SHMMAP, (region: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int);
forward!(x_shm_lock, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, (offset: c_int, n: c_int, flags: c_int) -> c_int);
forward!(x_shm_unmap, xShmUnmap, ffi::SQLITE_OK, (delete: c_int) -> c_int);
forward!(x_unfetch, xUnfetch, ffi::SQLITE_OK, (at: ffi::sqlite3_int64, page: *mut c_void) -> c_int);

unsafe extern "C" fn x_fetch(
    file: *mut ffi::sqlite3_file,
    at: ffi::sqlite3_int64,
    amt: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: forwarded as given; without the method, "no mapping" (SQLite then reads).
    unsafe {
        let (real, m) = real(file);
        match m.xFetch.filter(|_| m.iVersion >= 3) {
            Some(x) => x(real, at, amt, out),
            None => {
                *out = ptr::null_mut();
                ffi::SQLITE_OK
            }
        }
    }
}
