//! A VFS in front of SQLite's default one that writes each commit's WAL frames with a few system calls (one per
//! 128 KiB, and one for the commit frame's page) instead of two per frame.
//!
//! Why: the shard writer's commits are about 30 pages under load, so SQLite made some 60 `pwrite`s per commit, and
//! with their kernel work they were about a third of the writer thread's CPU (perf, 32 clients). The frames of a
//! commit go to consecutive offsets of the WAL, so [`super::write_coalescer`] gathers them into runs of up to 128 KiB
//! and decides when they must reach the file; this module plugs it into SQLite.
//!
//! What: [`install`] registers the VFS `hapnd-wal`, which delegates everything to the default VFS (`unix`) and
//! wraps each file it opens. Main database files and other files pass every call through. A WAL file
//! (`SQLITE_OPEN_WAL`) gets a coalescer: `xWrite` goes to it, and every other call that could observe the file
//! (`xRead`, `xFileSize`, `xTruncate`, `xSync`, `xFileControl`, `xFetch`, `xClose`) flushes it first.
//!
//! Publication: other connections read new frames through their own descriptors once the writer publishes the
//! wal-index header, and SQLite calls `xShmBarrier` on the *main database file* between the two copies of that
//! header it writes. So a WAL file links itself, when it opens, to its connection's main file (found with
//! `sqlite3_database_file_object`), and that file's `xShmBarrier` flushes the WAL first. By the coalescer's rules a
//! commit has already reached the file before then (its commit frame is written at once); the barrier only makes
//! this hold even on a path no rule foresaw. A barrier cannot report an error, so if such a late flush ever failed,
//! the process aborts rather than publish frames it could not write: no append is acknowledged without its bytes.
//!
//! The write lock: what a transaction that rolled back left gathered must not land after another writer (another
//! connection or process) wrote frames at the same offsets. So when the main file releases the WAL write lock
//! (`xShmLock`, unlock, exclusive, slot 0), the WAL is flushed first, while the lock is still held, which leaves
//! bytes past the last commit, as SQLite's own spills do; if that flush fails, the bytes are dropped: a commit never
//! leaves anything gathered, so they belong to none.
//!
//! Exclusive locking mode is refused (`PRAGMA locking_mode=exclusive` fails): in it SQLite takes and releases the
//! write lock without `xShmLock`. Hapnd never uses it.
//!
//! Threads: SQLite uses a connection's files from one thread at a time, and a WAL file and its main file belong to
//! the same connection, so the link between them is never used by two threads at once.

use std::cell::Cell;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::mem::offset_of;
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::ffi;

use super::write_coalescer::{Sink, WriteCoalescer};

/// The name connections open with (`Connection::open_with_flags_and_vfs`).
pub const VFS_NAME: &str = "hapnd-wal";
const VFS_NAME_C: &CStr = c"hapnd-wal";

/// Why [`install`] left SQLite's VFS as it was.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("sqlite has no default vfs to wrap")]
    NoDefaultVfs,
    #[error("the default vfs's files are too large to wrap ({bytes} bytes)")]
    FileTooLarge { bytes: usize },
    #[error("register the wal vfs: sqlite error {rc}")]
    Register { rc: c_int },
    #[error("the wal vfs was already installed")]
    AlreadyInstalled,
}

/// What the VFS did on the calling thread; for tests and diagnosis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `xWrite` calls SQLite made on WAL files.
    pub wal_writes: u64,
    /// Writes that reached WAL files.
    pub wal_file_writes: u64,
    /// Writes SQLite made to WAL files before the end of an earlier write (in-place frame overwrites, checksum
    /// rewrites, a rewound log's header).
    pub wal_overwrites: u64,
    /// Commit frame headers SQLite wrote: one per commit, more with padding.
    pub wal_commit_headers: u64,
    /// Flushes that `xShmBarrier` found work for: none, if the coalescer's rules cover every path.
    pub barrier_flushes: u64,
    /// Flushes that the release of the write lock found work for: what rolled-back transactions left gathered.
    pub unlock_flushes: u64,
}

/// Registers the VFS (not as the default). Safe to call once SQLite may have initialized; registering initializes
/// it, so the page cache wrapper, which must come first, is installed before this.
pub fn install() -> Result<(), InstallError> {
    // SAFETY: with a null name, `sqlite3_vfs_find` returns the default VFS or null; it is thread-safe.
    let inner = unsafe { ffi::sqlite3_vfs_find(ptr::null()) };
    if inner.is_null() {
        return Err(InstallError::NoDefaultVfs);
    }
    // SAFETY: a registered VFS lives until it is unregistered, which nothing in Hapnd does.
    let base = unsafe { &*inner };
    let wrapped_file_bytes = offset_of!(WrappedFile, inner) + usize::try_from(base.szOsFile).unwrap_or(0);
    let vfs = Box::new(ffi::sqlite3_vfs {
        iVersion: base.iVersion.min(3),
        szOsFile: c_int::try_from(wrapped_file_bytes).map_err(|_| InstallError::FileTooLarge {
            bytes: wrapped_file_bytes,
        })?,
        mxPathname: base.mxPathname,
        pNext: ptr::null_mut(),
        zName: VFS_NAME_C.as_ptr(),
        pAppData: ptr::null_mut(),
        xOpen: Some(x_open),
        xDelete: base.xDelete.and(Some(x_delete)),
        xAccess: base.xAccess.and(Some(x_access)),
        xFullPathname: base.xFullPathname.and(Some(x_full_pathname)),
        xDlOpen: base.xDlOpen.and(Some(x_dl_open)),
        xDlError: base.xDlError.and(Some(x_dl_error)),
        xDlSym: base.xDlSym.and(Some(x_dl_sym)),
        xDlClose: base.xDlClose.and(Some(x_dl_close)),
        xRandomness: base.xRandomness.and(Some(x_randomness)),
        xSleep: base.xSleep.and(Some(x_sleep)),
        xCurrentTime: base.xCurrentTime.and(Some(x_current_time)),
        xGetLastError: base.xGetLastError.and(Some(x_get_last_error)),
        xCurrentTimeInt64: base.xCurrentTimeInt64.and(Some(x_current_time_int64)),
        xSetSystemCall: base.xSetSystemCall.and(Some(x_set_system_call)),
        xGetSystemCall: base.xGetSystemCall.and(Some(x_get_system_call)),
        xNextSystemCall: base.xNextSystemCall.and(Some(x_next_system_call)),
    });
    if INSTALLED.get().is_some() {
        return Err(InstallError::AlreadyInstalled);
    }
    // Leaked: SQLite keeps the pointer for the life of the process and writes its `pNext` while (un)registering.
    let vfs = Box::into_raw(vfs);
    if INSTALLED.set(Installed { inner }).is_err() {
        return Err(InstallError::AlreadyInstalled);
    }
    // SAFETY: `vfs` comes from `Box::into_raw` and is never freed, so it outlives every connection; SQLite is the
    // only one to write through it (`pNext`, under its own mutex).
    let rc = unsafe { ffi::sqlite3_vfs_register(vfs, 0) };
    if rc != ffi::SQLITE_OK {
        return Err(InstallError::Register { rc });
    }
    REGISTERED.store(true, Ordering::Release);
    Ok(())
}

/// Whether [`install`] succeeded in this process.
pub fn installed() -> bool {
    REGISTERED.load(Ordering::Acquire)
}

/// The VFS's counts on the calling thread.
pub fn thread_stats() -> Stats {
    STATS.try_with(Cell::get).unwrap_or_default()
}

/// The default VFS, which ours wraps.
struct Installed {
    inner: *mut ffi::sqlite3_vfs,
}

// SAFETY: the default VFS lives for the whole process and we only read it.
unsafe impl Send for Installed {}
// SAFETY: as for Send.
unsafe impl Sync for Installed {}

static INSTALLED: OnceLock<Installed> = OnceLock::new();
static REGISTERED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static STATS: Cell<Stats> = const {
        Cell::new(Stats { wal_writes: 0, wal_file_writes: 0, wal_overwrites: 0, wal_commit_headers: 0, barrier_flushes: 0, unlock_flushes: 0 })
    };
}

fn count(update: impl FnOnce(&mut Stats)) {
    let _ = STATS.try_with(|cell| {
        let mut stats = cell.get();
        update(&mut stats);
        cell.set(stats);
    });
}

/// The default VFS. Only called from methods SQLite reaches after `install` registered ours.
fn inner_vfs() -> *mut ffi::sqlite3_vfs {
    INSTALLED
        .get()
        .map(|installed| installed.inner)
        .expect("SQLite calls the wal vfs only after install registered it")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Main,
    Wal,
    Other,
}

/// What SQLite allocates for a file of this VFS (`szOsFile` bytes): our part, then the default VFS's file.
#[repr(C)]
struct WrappedFile {
    /// SQLite's view: must come first.
    base: ffi::sqlite3_file,
    kind: Kind,
    /// Main: its connection's WAL file while that is open and linked.
    wal: *mut WrappedFile,
    /// Wal: the main database file it linked itself to.
    main: *mut WrappedFile,
    /// Wal: its gathered writes.
    coalescer: Option<Box<WriteCoalescer>>,
    /// The default VFS's file, `szOsFile` of that VFS from here on: must come last.
    inner: ffi::sqlite3_file,
}

/// The default VFS's file inside ours, as a place to write to.
struct InnerFile(*mut ffi::sqlite3_file);

impl Sink for InnerFile {
    type Error = c_int;

    fn write_at(&mut self, bytes: &[u8], offset: u64) -> Result<(), c_int> {
        let (Ok(len), Ok(offset)) = (c_int::try_from(bytes.len()), i64::try_from(offset)) else {
            return Err(ffi::SQLITE_IOERR_WRITE);
        };
        count(|stats| stats.wal_file_writes += 1);
        // SAFETY: `self.0` is an open file of the default VFS (its methods are set); `bytes` is valid for `len`
        // bytes for the duration of the call, which does not keep the pointer.
        let rc = unsafe {
            match (*(*self.0).pMethods).xWrite {
                Some(write) => write(self.0, bytes.as_ptr().cast(), len, offset),
                None => ffi::SQLITE_IOERR_WRITE,
            }
        };
        if rc == ffi::SQLITE_OK { Ok(()) } else { Err(rc) }
    }
}

/// Our part of a file SQLite hands to one of our methods (`base` is its first field). Only raw pointers and
/// references to single fields are made from it, never a reference to the whole struct: its last field is the
/// default VFS's file, which that VFS's methods write through a pointer of their own.
fn wrapper(file: *mut ffi::sqlite3_file) -> *mut WrappedFile {
    file.cast()
}

/// A WAL file's coalescer; `None` for other files.
///
/// # Safety
/// `file` must be a file this VFS opened and not yet closed, used by no other thread during the call, and the
/// reference must not outlive the call.
unsafe fn coalescer<'a>(file: *mut ffi::sqlite3_file) -> Option<&'a mut WriteCoalescer> {
    // SAFETY: per the contract; the reference covers only the `coalescer` field's box.
    unsafe { (*wrapper(file)).coalescer.as_deref_mut() }
}

/// The default VFS's file and its methods.
///
/// # Safety
/// As for [`coalescer`]; the inner file must have opened (its methods set).
unsafe fn inner_of(file: *mut ffi::sqlite3_file) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    // SAFETY: per the contract; the inner methods are a static table of the default VFS.
    unsafe {
        let inner = ptr::addr_of_mut!((*file.cast::<WrappedFile>()).inner);
        (inner, &*(*inner).pMethods)
    }
}

/// Writes out what a WAL file has gathered; `SQLITE_OK` for other files.
///
/// # Safety
/// As for [`inner_of`].
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: per the contract.
    let (inner, coalescer) = unsafe { (inner_of(file).0, coalescer(file)) };
    match coalescer.map(|coalescer| coalescer.flush(&mut InnerFile(inner))) {
        Some(Err(rc)) => rc,
        _ => ffi::SQLITE_OK,
    }
}

fn is_ours(file: *const ffi::sqlite3_file) -> bool {
    if file.is_null() {
        return false;
    }
    // SAFETY: `file` is a non-null `sqlite3_file` SQLite handed out; reading its methods pointer is always valid.
    let methods = unsafe { (*file).pMethods };
    METHODS.iter().any(|ours| ptr::eq(methods, ours))
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let kind = if flags & ffi::SQLITE_OPEN_WAL != 0 {
        Kind::Wal
    } else if flags & ffi::SQLITE_OPEN_MAIN_DB != 0 {
        Kind::Main
    } else {
        Kind::Other
    };
    let ours = wrapper(file);
    // SAFETY: SQLite hands us `szOsFile` writable bytes at `file`, aligned for any type (sqlite3_malloc), which is
    // at least `size_of::<WrappedFile>()`: our fields, then the inner file's, of at least its `pMethods`.
    unsafe {
        ptr::write(
            ours,
            WrappedFile {
                base: ffi::sqlite3_file { pMethods: ptr::null() },
                kind,
                wal: ptr::null_mut(),
                main: ptr::null_mut(),
                coalescer: (kind == Kind::Wal).then(|| Box::new(WriteCoalescer::new())),
                inner: ffi::sqlite3_file { pMethods: ptr::null() },
            },
        );
    }
    let inner_vfs = inner_vfs();
    // SAFETY: the inner file is the rest of the allocation, `szOsFile` of the default VFS long; `name`, `flags`
    // and `out_flags` are SQLite's own, passed on unchanged.
    let (rc, inner_methods) = unsafe {
        let inner = ptr::addr_of_mut!((*ours).inner);
        let rc = match (*inner_vfs).xOpen {
            Some(open) => open(inner_vfs, name, inner, flags, out_flags),
            None => ffi::SQLITE_CANTOPEN,
        };
        (rc, (*inner).pMethods)
    };
    if inner_methods.is_null() {
        // SQLite calls xClose only for a file whose methods are set; nothing else will drop our part.
        // SAFETY: written above, not yet dropped.
        unsafe { ptr::drop_in_place(ours) };
        return if rc == ffi::SQLITE_OK { ffi::SQLITE_CANTOPEN } else { rc };
    }
    // SAFETY: the inner methods are the default VFS's static table; `ours` is written above.
    unsafe {
        let version = usize::try_from((*inner_methods).iVersion).unwrap_or(1).clamp(1, 3);
        (*ours).base.pMethods = &METHODS[version - 1];
        if rc == ffi::SQLITE_OK && kind == Kind::Wal && !name.is_null() {
            let main = ffi::sqlite3_database_file_object(name);
            if is_ours(main) && (*wrapper(main)).kind == Kind::Main {
                (*wrapper(main)).wal = ours;
                (*ours).main = main.cast();
            }
        }
    }
    rc
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes a file it opened through us, once.
    unsafe {
        let flushed = flush(file);
        let this = wrapper(file);
        if !(*this).main.is_null() {
            (*(*this).main).wal = ptr::null_mut();
        }
        if !(*this).wal.is_null() {
            (*(*this).wal).main = ptr::null_mut();
        }
        let (inner, methods) = inner_of(file);
        let closed = methods.xClose.map_or(ffi::SQLITE_OK, |close| close(inner));
        ptr::drop_in_place(file.cast::<WrappedFile>());
        (*file).pMethods = ptr::null();
        if flushed != ffi::SQLITE_OK { flushed } else { closed }
    }
}

unsafe extern "C" fn x_write(file: *mut ffi::sqlite3_file, bytes: *const c_void, amount: c_int, offset: i64) -> c_int {
    // SAFETY: SQLite calls with one of our open files and `amount` readable bytes at `bytes`.
    unsafe {
        let (inner, methods) = inner_of(file);
        let (Some(coalescer), Ok(len), Ok(at)) = (coalescer(file), usize::try_from(amount), u64::try_from(offset))
        else {
            return methods
                .xWrite
                .map_or(ffi::SQLITE_IOERR_WRITE, |write| write(inner, bytes, amount, offset));
        };
        let (overwrites, commit_headers) = (coalescer.overwrites(), coalescer.commit_headers());
        let bytes = std::slice::from_raw_parts(bytes.cast::<u8>(), len);
        let written = coalescer.write(&mut InnerFile(inner), bytes, at);
        let overwrote = coalescer.overwrites() - overwrites;
        let committed = coalescer.commit_headers() - commit_headers;
        count(|stats| {
            stats.wal_writes += 1;
            stats.wal_overwrites += overwrote;
            stats.wal_commit_headers += committed;
        });
        match written {
            Ok(()) => ffi::SQLITE_OK,
            Err(rc) => rc,
        }
    }
}

/// Defines a method that flushes a WAL file, then delegates.
macro_rules! flushing_method {
    ($name:ident, $field:ident, $missing:expr, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file, $($arg: $ty),*) -> c_int {
            // SAFETY: SQLite calls with one of our open files; the arguments are passed on unchanged.
            unsafe {
                let flushed = flush(file);
                if flushed != ffi::SQLITE_OK {
                    return flushed;
                }
                let (inner, methods) = inner_of(file);
                methods.$field.map_or($missing, |method| method(inner, $($arg),*))
            }
        }
    };
}

/// Defines a method that only delegates.
macro_rules! plain_method {
    ($name:ident, $field:ident, $missing:expr, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file, $($arg: $ty),*) -> $ret {
            // SAFETY: SQLite calls with one of our open files; the arguments are passed on unchanged.
            unsafe {
                let (inner, methods) = inner_of(file);
                methods.$field.map_or($missing, |method| method(inner, $($arg),*))
            }
        }
    };
}

flushing_method!(x_read, xRead, ffi::SQLITE_IOERR_READ, (buffer: *mut c_void, amount: c_int, offset: i64));
flushing_method!(x_truncate, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, (size: i64));
flushing_method!(x_sync, xSync, ffi::SQLITE_IOERR_FSYNC, (flags: c_int));
flushing_method!(x_file_size, xFileSize, ffi::SQLITE_IOERR_FSTAT, (size: *mut i64));
flushing_method!(x_wal_file_control, xFileControl, ffi::SQLITE_NOTFOUND, (op: c_int, arg: *mut c_void));
flushing_method!(x_fetch, xFetch, ffi::SQLITE_IOERR_MMAP, (offset: i64, amount: c_int, out: *mut *mut c_void));
plain_method!(x_lock, xLock, ffi::SQLITE_IOERR_LOCK, (level: c_int) -> c_int);
plain_method!(x_unlock, xUnlock, ffi::SQLITE_IOERR_UNLOCK, (level: c_int) -> c_int);
plain_method!(x_check_reserved_lock, xCheckReservedLock, ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, (out: *mut c_int) -> c_int);
plain_method!(x_sector_size, xSectorSize, 4096, () -> c_int);
plain_method!(x_device_characteristics, xDeviceCharacteristics, 0, () -> c_int);
plain_method!(x_shm_map, xShmMap, ffi::SQLITE_IOERR_SHMMAP,
    (region: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int);
plain_method!(x_shm_unmap, xShmUnmap, ffi::SQLITE_OK, (delete: c_int) -> c_int);
plain_method!(x_unfetch, xUnfetch, ffi::SQLITE_OK, (offset: i64, pointer: *mut c_void) -> c_int);

unsafe extern "C" fn x_file_control(file: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    // SAFETY: SQLite calls with one of our open files; for `SQLITE_FCNTL_PRAGMA`, `arg` is its `char*[3]`.
    unsafe {
        if op == ffi::SQLITE_FCNTL_PRAGMA && (*wrapper(file)).kind == Kind::Main && sets_exclusive_locking(arg) {
            let message = ffi::sqlite3_mprintf(c"%s".as_ptr(), EXCLUSIVE_LOCKING_REFUSED.as_ptr());
            *arg.cast::<*mut c_char>() = message;
            return ffi::SQLITE_ERROR;
        }
        x_wal_file_control(file, op, arg)
    }
}

/// In exclusive locking mode SQLite takes and releases the WAL write lock without `xShmLock`, so bytes a rolled-back
/// transaction left gathered would not be written while the lock is held; Hapnd never uses the mode.
const EXCLUSIVE_LOCKING_REFUSED: &CStr = c"the hapnd-wal vfs does not support locking_mode=exclusive";

/// Whether a `PRAGMA` handed to the file (name and value, `arg[1]` and `arg[2]`) sets exclusive locking.
///
/// # Safety
/// `arg` must be SQLite's `SQLITE_FCNTL_PRAGMA` argument: three C strings, the last two possibly null.
unsafe fn sets_exclusive_locking(arg: *mut c_void) -> bool {
    // SAFETY: per the contract.
    unsafe {
        let words = arg.cast::<*const c_char>();
        let (name, value) = (*words.add(1), *words.add(2));
        !name.is_null()
            && !value.is_null()
            && CStr::from_ptr(name).to_bytes().eq_ignore_ascii_case(b"locking_mode")
            && CStr::from_ptr(value).to_bytes().eq_ignore_ascii_case(b"exclusive")
    }
}

/// The wal-index lock slot of the WAL write lock (sqlite3.c `WAL_WRITE_LOCK`).
const WAL_WRITE_LOCK: c_int = 0;

unsafe extern "C" fn x_shm_lock(file: *mut ffi::sqlite3_file, offset: c_int, n: c_int, flags: c_int) -> c_int {
    let releases_write_lock = flags == ffi::SQLITE_SHM_UNLOCK | ffi::SQLITE_SHM_EXCLUSIVE
        && offset <= WAL_WRITE_LOCK
        && WAL_WRITE_LOCK < offset.saturating_add(n);
    // SAFETY: SQLite calls with one of our open files; a linked WAL file is open and on this thread, as in
    // `x_shm_barrier`.
    unsafe {
        let wal = (*wrapper(file)).wal;
        if releases_write_lock
            && !wal.is_null()
            && let Some(coalescer) = coalescer(wal.cast())
            && coalescer.pending() > 0
        {
            count(|stats| stats.unlock_flushes += 1);
            if let Err(rc) = coalescer.flush(&mut InnerFile(inner_of(wal.cast()).0)) {
                tracing::warn!(
                    rc,
                    "writing what a rolled-back transaction left in the WAL failed; dropped"
                );
                coalescer.discard();
            }
        }
        let (inner, methods) = inner_of(file);
        methods
            .xShmLock
            .map_or(ffi::SQLITE_IOERR_SHMLOCK, |lock| lock(inner, offset, n, flags))
    }
}

unsafe extern "C" fn x_shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: SQLite calls with one of our open files; its linked WAL file belongs to the same connection, so it is
    // open (it unlinks itself when it closes) and used by no other thread.
    unsafe {
        let wal = (*wrapper(file)).wal;
        if !wal.is_null() && coalescer(wal.cast()).is_some_and(|coalescer| coalescer.pending() > 0) {
            count(|stats| stats.barrier_flushes += 1);
            let rc = flush(wal.cast());
            if rc != ffi::SQLITE_OK {
                tracing::error!(
                    rc,
                    "a WAL write failed where SQLite cannot be told; stopping before it publishes it"
                );
                std::process::abort();
            }
        }
        let (inner, methods) = inner_of(file);
        if let Some(barrier) = methods.xShmBarrier {
            barrier(inner);
        }
    }
}

/// Our methods for inner files of method versions 1, 2 and 3: the same functions, each table offering what its
/// version defines.
static METHODS: [ffi::sqlite3_io_methods; 3] = [methods(1), methods(2), methods(3)];

const fn methods(version: c_int) -> ffi::sqlite3_io_methods {
    ffi::sqlite3_io_methods {
        iVersion: version,
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
        xShmMap: if version >= 2 { Some(x_shm_map) } else { None },
        xShmLock: if version >= 2 { Some(x_shm_lock) } else { None },
        xShmBarrier: if version >= 2 { Some(x_shm_barrier) } else { None },
        xShmUnmap: if version >= 2 { Some(x_shm_unmap) } else { None },
        xFetch: if version >= 3 { Some(x_fetch) } else { None },
        xUnfetch: if version >= 3 { Some(x_unfetch) } else { None },
    }
}

/// Defines a VFS method that calls the default VFS's with the same arguments.
macro_rules! vfs_method {
    ($name:ident, $field:ident, $missing:expr, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        unsafe extern "C" fn $name(_vfs: *mut ffi::sqlite3_vfs, $($arg: $ty),*) -> $ret {
            let inner = inner_vfs();
            // SAFETY: the default VFS lives for the process; the arguments are SQLite's, passed on unchanged.
            unsafe { (*inner).$field.map_or($missing, |method| method(inner, $($arg),*)) }
        }
    };
}

vfs_method!(x_delete, xDelete, ffi::SQLITE_IOERR_DELETE, (name: *const c_char, sync_dir: c_int) -> c_int);
vfs_method!(x_access, xAccess, ffi::SQLITE_IOERR_ACCESS, (name: *const c_char, flags: c_int, out: *mut c_int) -> c_int);
vfs_method!(x_full_pathname, xFullPathname, ffi::SQLITE_CANTOPEN,
    (name: *const c_char, size: c_int, out: *mut c_char) -> c_int);
vfs_method!(x_dl_open, xDlOpen, ptr::null_mut(), (name: *const c_char) -> *mut c_void);
vfs_method!(x_dl_error, xDlError, (), (size: c_int, out: *mut c_char) -> ());
vfs_method!(x_dl_sym, xDlSym, None,
    (handle: *mut c_void, symbol: *const c_char)
        -> Option<unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char)>);
vfs_method!(x_dl_close, xDlClose, (), (handle: *mut c_void) -> ());
vfs_method!(x_randomness, xRandomness, 0, (size: c_int, out: *mut c_char) -> c_int);
vfs_method!(x_sleep, xSleep, 0, (microseconds: c_int) -> c_int);
vfs_method!(x_current_time, xCurrentTime, ffi::SQLITE_ERROR, (out: *mut f64) -> c_int);
vfs_method!(x_get_last_error, xGetLastError, 0, (size: c_int, out: *mut c_char) -> c_int);
vfs_method!(x_current_time_int64, xCurrentTimeInt64, ffi::SQLITE_ERROR, (out: *mut i64) -> c_int);
vfs_method!(x_set_system_call, xSetSystemCall, ffi::SQLITE_NOTFOUND,
    (name: *const c_char, call: ffi::sqlite3_syscall_ptr) -> c_int);
vfs_method!(x_get_system_call, xGetSystemCall, None, (name: *const c_char) -> ffi::sqlite3_syscall_ptr);
vfs_method!(x_next_system_call, xNextSystemCall, ptr::null(), (name: *const c_char) -> *const c_char);

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rusqlite::{Connection, OpenFlags, params};

    use super::*;
    use crate::db::{Access, Durability, open};

    fn since(before: Stats) -> Stats {
        let now = thread_stats();
        Stats {
            wal_writes: now.wal_writes - before.wal_writes,
            wal_file_writes: now.wal_file_writes - before.wal_file_writes,
            wal_overwrites: now.wal_overwrites - before.wal_overwrites,
            wal_commit_headers: now.wal_commit_headers - before.wal_commit_headers,
            barrier_flushes: now.barrier_flushes - before.barrier_flushes,
            unlock_flushes: now.unlock_flushes - before.unlock_flushes,
        }
    }

    /// Opens a copy of the database and its WAL (not the wal-index) with SQLite's own VFS, which rebuilds the index
    /// from the WAL's frames and checksums: what a restart after a crash would see.
    fn reopen_copy_with_plain_sqlite(path: &Path, dir: &Path) -> Connection {
        let copy = dir.join("copy.db");
        std::fs::copy(path, &copy).expect("copy the database");
        let wal = path.with_extension("db-wal");
        std::fs::copy(&wal, dir.join("copy.db-wal")).expect("copy the wal");
        let conn = Connection::open_with_flags_and_vfs(&copy, OpenFlags::SQLITE_OPEN_READ_WRITE, "unix")
            .expect("open the copy");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("check");
        assert_eq!(check, "ok");
        conn
    }

    /// A database of its own with the table `t`, opened as the server opens one, with no automatic checkpoints.
    fn fresh_table() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let conn = open(&path, Access::ReadWrite, Durability::Normal).expect("open");
        create_table(&conn);
        (dir, path, conn)
    }

    fn create_table(conn: &Connection) {
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .expect("no checkpoints");
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
            .expect("schema");
    }

    fn blob(key: i64, len: usize) -> Vec<u8> {
        (0..len).map(|i| (key as usize * 31 + i) as u8).collect()
    }

    fn insert(conn: &Connection, keys: std::ops::Range<i64>, len: usize) -> rusqlite::Result<()> {
        for key in keys {
            conn.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", params![key, blob(key, len)])?;
        }
        Ok(())
    }

    /// Every row is `0..rows` with its own blob of `len` bytes.
    fn assert_rows(conn: &Connection, rows: i64, len: usize) {
        let count: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .expect("count");
        assert_eq!(count, rows);
        let mut statement = conn.prepare("SELECT k, v FROM t ORDER BY k").expect("prepare");
        let mut found = statement.query([]).expect("query");
        let mut expected_key = 0;
        while let Some(row) = found.next().expect("row") {
            let key: i64 = row.get(0).expect("k");
            let value: Vec<u8> = row.get(1).expect("v");
            assert_eq!(key, expected_key);
            assert_eq!(value, blob(key, len), "row {key}");
            expected_key += 1;
        }
    }

    #[test]
    fn a_commit_reaches_the_wal_in_two_writes_and_plain_sqlite_recovers_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let mut conn = open(&path, Access::ReadWrite, Durability::Normal).expect("open");
        assert!(installed(), "db::open installs the vfs");
        create_table(&conn);

        let before = thread_stats();
        let tx = conn.transaction().expect("begin");
        insert(&tx, 0..80, 1000).expect("insert");
        tx.commit().expect("commit");
        let commit = since(before);
        let frames = commit.wal_writes / 2;
        assert!((10..30).contains(&frames), "one run's worth of frames: {frames}");
        assert_eq!(commit.wal_file_writes, 2, "{commit:?}");
        assert_eq!(commit.barrier_flushes + commit.unlock_flushes, 0);

        let copy = reopen_copy_with_plain_sqlite(&path, dir.path());
        assert_rows(&copy, 80, 1000);
    }

    #[test]
    fn spilled_and_rewritten_frames_stay_valid() {
        let (dir, path, mut conn) = fresh_table();
        // A cache of a few pages makes SQLite spill dirty pages into the WAL in the middle of the transaction, then
        // write some of them again: it overwrites their frames and rewrites the checksums at commit.
        conn.pragma_update(None, "cache_size", 8).expect("tiny cache");

        let before = thread_stats();
        let tx = conn.transaction().expect("begin");
        insert(&tx, 0..2000, 300).expect("insert");
        // Twice, away and back: SQLite does not dirty a page for an update that changes nothing.
        for value_key in [10_000, 0] {
            for key in (0..2000).step_by(7) {
                let value = blob(key + value_key, 300);
                tx.execute("UPDATE t SET v = ?2 WHERE k = ?1", params![key, value])
                    .expect("update");
            }
        }
        tx.commit().expect("commit");
        let commit = since(before);
        assert!(
            commit.wal_overwrites > 0,
            "frames were overwritten in place: {commit:?}"
        );
        assert!(
            commit.wal_writes / 2 > 150,
            "more frames than one run holds: {commit:?}"
        );
        assert_eq!(commit.barrier_flushes + commit.unlock_flushes, 0);
        assert_rows(&conn, 2000, 300);

        let copy = reopen_copy_with_plain_sqlite(&path, dir.path());
        assert_rows(&copy, 2000, 300);
    }

    /// SQLite's undo usually reads a page back, which writes out what the spill gathered; either way nothing of the
    /// rolled-back transaction may land on the frames the next writer commits.
    #[test]
    fn a_rolled_back_spill_never_lands_on_a_later_writers_frames() {
        let (dir, path, mut conn) = fresh_table();
        insert(&conn, 0..10, 300).expect("insert");
        conn.pragma_update(None, "cache_size", 8).expect("tiny cache");

        let before = thread_stats();
        let tx = conn.transaction().expect("begin");
        insert(&tx, 10..1000, 300).expect("insert");
        tx.rollback().expect("rollback");
        let rolled_back = since(before);
        assert!(rolled_back.wal_writes > 0, "the transaction spilled: {rolled_back:?}");

        // Another connection now writes frames where the rolled-back ones were; nothing of ours may land on them.
        let other = open(&path, Access::ReadWrite, Durability::Normal).expect("open another writer");
        insert(&other, 10..40, 300).expect("insert");
        drop(other);
        insert(&conn, 40..50, 300).expect("insert");
        assert_rows(&conn, 50, 300);
        let copy = reopen_copy_with_plain_sqlite(&path, dir.path());
        assert_rows(&copy, 50, 300);
    }

    /// The WAL file of a connection, as SQLite holds it (ours).
    fn wal_file_of(conn: &Connection) -> *mut ffi::sqlite3_file {
        let mut file: *mut ffi::sqlite3_file = ptr::null_mut();
        // SAFETY: JOURNAL_POINTER writes the journal's (here: the WAL's) `sqlite3_file*` into the pointer it gets;
        // the connection is open and used by this thread only.
        let rc = unsafe {
            ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_JOURNAL_POINTER,
                (&raw mut file).cast(),
            )
        };
        assert_eq!(rc, ffi::SQLITE_OK);
        assert!(is_ours(file), "the WAL was opened through the vfs");
        file
    }

    #[test]
    fn bytes_still_gathered_are_written_when_the_write_lock_is_released() {
        let (_dir, path, conn) = fresh_table();
        insert(&conn, 0..10, 300).expect("insert");
        let wal_path = path.with_extension("db-wal");
        // A frame boundary (frames of 24 + 4096 bytes after the 32-byte WAL header) a megabyte past the end.
        let wal_len = std::fs::metadata(&wal_path).expect("wal").len();
        let far = 32 + ((wal_len + (1 << 20)) / 4120 + 1) * 4120;

        // What SQLite's undo does not flush by reading (it drops unreferenced pages without reading them): bytes a
        // transaction gathered and then abandoned, here placed by hand, far past the last frame.
        conn.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");
        let wal = wal_file_of(&conn);
        // A frame that is not a commit's, header then page, as SQLite writes one.
        let mut bytes = vec![0_u8; 24];
        bytes[3] = 2;
        bytes.extend_from_slice(&[0x5A; 4096]);
        for (part, at) in [(&bytes[..24], far), (&bytes[24..], far + 24)] {
            // SAFETY: `wal` is the connection's open WAL file, used only from this thread; `part` outlives the call.
            let rc = unsafe { x_write(wal, part.as_ptr().cast(), part.len() as c_int, at as i64) };
            assert_eq!(rc, ffi::SQLITE_OK);
        }
        // SAFETY: as above.
        let gathered = unsafe { coalescer(wal) }.map(|c| c.pending());
        assert_eq!(gathered, Some(bytes.len()), "gathered, not written");
        let before = thread_stats();
        conn.execute_batch("ROLLBACK").expect("release the write lock");
        assert_eq!(since(before).unlock_flushes, 1);
        let on_disk = std::fs::read(&wal_path).expect("read the wal");
        let far = far as usize;
        assert_eq!(
            &on_disk[far..far + bytes.len()],
            &bytes[..],
            "written while the lock was held"
        );
        insert(&conn, 10..20, 300).expect("the next transaction works as before");
        assert_rows(&conn, 20, 300);
    }

    #[test]
    fn exclusive_locking_is_refused() {
        let (_dir, _path, conn) = fresh_table();
        let error = conn
            .pragma_update(None, "locking_mode", "EXCLUSIVE")
            .expect_err("refused");
        assert!(error.to_string().contains("locking_mode=exclusive"), "{error}");
        let mode: String = conn
            .pragma_query_value(None, "locking_mode", |row| row.get(0))
            .expect("query");
        assert_eq!(mode, "normal");
        insert(&conn, 0..3, 100).expect("the connection works as before");
    }

    #[test]
    fn padded_commits_with_synchronous_full_stay_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        drop(open(&path, Access::ReadWrite, Durability::Full).expect("open once, to install the vfs"));
        // Without powersafe overwrite SQLite pads each commit to a sector boundary with copies of the commit frame,
        // and splits a write at the point it syncs.
        let uri = format!("file:{}?psow=0", path.display());
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags_and_vfs(&uri, flags, VFS_NAME).expect("open without psow");
        conn.pragma_update(None, "journal_mode", "WAL").expect("wal");
        conn.pragma_update(None, "synchronous", "FULL").expect("full");
        create_table(&conn);

        let before = thread_stats();
        for commit in 0..20 {
            insert(&conn, commit * 3..commit * 3 + 3, 500).expect("insert");
        }
        let commits = since(before);
        // 60 commits (one per insert), each with its commit frame; padding frames are commit frames too.
        assert!(
            commits.wal_commit_headers > 60,
            "padding frames were written: {commits:?}"
        );
        assert_eq!(commits.barrier_flushes + commits.unlock_flushes, 0, "{commits:?}");
        assert_rows(&conn, 60, 500);
        let copy = reopen_copy_with_plain_sqlite(&path, dir.path());
        assert_rows(&copy, 60, 500);
    }

    #[test]
    fn a_reader_sees_every_commit_whole() {
        const COMMITS: i64 = 300;
        const ROWS_PER_COMMIT: i64 = 5;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let mut conn = open(&path, Access::ReadWrite, Durability::Normal).expect("open");
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
            .expect("schema");
        let reader = open(&path, Access::ReadOnly, Durability::Normal).expect("open a reader");

        let writer = std::thread::spawn(move || {
            for commit in 0..COMMITS {
                let tx = conn.transaction().expect("begin");
                insert(&tx, commit * ROWS_PER_COMMIT..(commit + 1) * ROWS_PER_COMMIT, 700).expect("insert");
                tx.commit().expect("commit");
            }
            thread_stats()
        });
        // The reader reads the newest rows through its own descriptor as soon as they are published: had a frame
        // been published before it reached the file, it would read stale or zeroed pages.
        let mut seen = 0;
        loop {
            let done = writer.is_finished();
            let newest: Vec<(i64, Vec<u8>)> = reader
                .prepare_cached("SELECT k, v FROM t ORDER BY k DESC LIMIT 5")
                .and_then(|mut statement| {
                    statement
                        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                        .collect::<rusqlite::Result<_>>()
                })
                .expect("read");
            for (key, value) in &newest {
                assert_eq!(*value, blob(*key, 700), "row {key}");
            }
            let count = newest.first().map_or(0, |(key, _)| key + 1);
            assert!(count >= seen, "commits seen in order");
            seen = count;
            if done {
                break;
            }
        }
        let stats = writer.join().expect("writer");
        assert_eq!(seen, COMMITS * ROWS_PER_COMMIT);
        assert_eq!(stats.barrier_flushes + stats.unlock_flushes, 0);
        assert!(stats.wal_file_writes <= stats.wal_writes / 2, "{stats:?}");
        assert_rows(&reader, COMMITS * ROWS_PER_COMMIT, 700);
    }

    /// Set in the child process of `a_refused_write_fails_its_commit_and_keeps_the_earlier_ones`.
    const CHILD: &str = "HAPND_WAL_VFS_TEST_CHILD_DIR";

    /// Real write failures: the file size limit (`RLIMIT_FSIZE`, with `SIGXFSZ` ignored, so `pwrite` fails with
    /// `EFBIG`) stops the WAL from growing. The limit is per process, so the test runs itself again as a child.
    #[test]
    fn a_refused_write_fails_its_commit_and_keeps_the_earlier_ones() {
        if let Some(dir) = std::env::var_os(CHILD) {
            write_until_refused(Path::new(&dir));
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "db::wal_vfs::tests::a_refused_write_fails_its_commit_and_keeps_the_earlier_ones",
            ])
            .args(["--test-threads", "1", "--nocapture"])
            .env(CHILD, dir.path())
            .status()
            .expect("run the child");
        assert!(status.success(), "the child failed: {status}");
        let conn = reopen_copy_with_plain_sqlite(&dir.path().join("t.db"), dir.path());
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .expect("count");
        let written: i64 = std::fs::read_to_string(dir.path().join("committed"))
            .expect("the child's count")
            .trim()
            .parse()
            .expect("a number");
        assert_eq!(rows, written, "exactly the commits that succeeded");
        assert_rows(&conn, rows, 1000);
    }

    fn write_until_refused(dir: &Path) {
        let path = dir.join("t.db");
        let conn = open(&path, Access::ReadWrite, Durability::Normal).expect("open");
        create_table(&conn);
        let wal_len = std::fs::metadata(path.with_extension("db-wal")).expect("wal").len();
        // SAFETY: ignoring SIGXFSZ only turns the signal into an EFBIG error from write calls.
        unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
        let limit = |bytes: u64| {
            let mut current = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: valid pointers to an rlimit; only the soft limit moves, within the hard one.
            unsafe {
                assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut current), 0);
                current.rlim_cur = bytes.min(current.rlim_max);
                assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &current), 0);
            }
        };
        limit(wal_len + 200_000);
        let mut committed = 0;
        let mut refused = None;
        for commit in 0..100 {
            // About 15 frames a commit: runs of frames, a commit's own writes, some of them cut short by the limit.
            let keys = committed..committed + 50;
            match conn
                .execute_batch("BEGIN")
                .and_then(|()| insert(&conn, keys, 1000))
                .and_then(|()| conn.execute_batch("COMMIT"))
            {
                Ok(()) => committed += 50,
                Err(error) => {
                    refused = Some((commit, error));
                    break;
                }
            }
        }
        let (commit, error) = refused.expect("the limit refused a commit");
        assert!(commit > 0, "some commits fit under the limit");
        assert!(
            matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::SystemIoFailure | rusqlite::ErrorCode::DiskFull)
            ),
            "{error}"
        );
        let _ = conn.execute_batch("ROLLBACK");
        limit(u64::MAX);
        insert(&conn, committed..committed + 50, 1000).expect("writes work again once the limit is lifted");
        committed += 50;
        assert_rows(&conn, committed, 1000);
        std::fs::write(dir.join("committed"), committed.to_string()).expect("tell the parent");
        // Like a crash: no close, so the WAL stays as the failures left it for the parent to recover.
        std::mem::forget(conn);
    }
}
