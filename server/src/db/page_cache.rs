//! A thin wrapper around SQLite's default page cache (`pcache1`) that skips commit-time truncations with nothing to
//! drop.
//!
//! Why: every commit ends in `pager_end_transaction` → `sqlite3PcacheTruncate(dbSize)` → the page cache's
//! `xTruncate(dbSize + 1)`. `pcache1Truncate` does work only when `iLimit <= iMaxKey`, its record of the largest key
//! it ever cached, and it scans the whole hash table, every cached page, when `iMaxKey - iLimit >= nHash`. But
//! `balance_nonroot` sorts the pages it produces by swapping their numbers through a temporary one, the lock-byte
//! page `PENDING_BYTE / pageSize + 1` (262145 with 4 KiB pages), which no database ever uses as a real page. That
//! rekey raises `iMaxKey` to 262145 and nothing lowers it again until a truncation, so the next commit after any
//! b-tree split with a swap walks the entire cache to drop nothing. Measured with perf uprobes on the server under
//! the 32-client append load: about one commit in four paid a full scan of ~65 µs on a small database, 1.2–2.1 % of
//! all CPU, on the shard's single writer thread. On an 85 MB shard file with the 64 MiB cache full (~16k pages),
//! nearly every commit of 11 appends had such a swap, and the scans took 15–18 % of the writer's CPU.
//!
//! What: [`install`] puts this module's methods in front of the default ones (`SQLITE_CONFIG_GETPCACHE2`, then
//! `SQLITE_CONFIG_PCACHE2`), before SQLite initializes. Every method delegates to `pcache1`; on top, each cache keeps
//! an upper bound on the keys it can hold, from the only two ways a page gets a key: a page `xFetch` returns
//! (created or found, whatever the create flag) and the new key of an `xRekey`. The lock-byte key is tracked apart,
//! as a flag that its rekey away clears, because a page parked there for a swap always leaves it again. `xTruncate`
//! skips `pcache1` when no page at or above `iLimit` can be in the cache: then the call could only have lowered
//! `pcache1`'s `iMaxKey`, which is just a hint (a higher one is always a valid bound). Pages leave the cache in many
//! ways we do not see (eviction, `xUnpin` with discard, `xShrink`, another cache recycling them); each only makes
//! the bound looser, never wrong. Nothing here depends on how the pager uses the cache: rollbacks and savepoint
//! rollbacks that shrink `dbSize`, `sqlite3PagerTruncateImage`, a reset after another connection wrote, all reach
//! the cache as `xTruncate` with an `iLimit` this module compares with what the cache was handed.
//!
//! Threads: SQLite calls the methods of one cache from one pager, and so one thread at a time (`pcache1` itself
//! takes no lock for a per-connection cache); the state is atomics used with relaxed loads and stores, so nothing
//! here is undefined behaviour even if that ever changed.

use std::cell::Cell;
use std::ffi::{c_int, c_uint, c_void};
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rusqlite::ffi;

/// Why [`install`] left SQLite's page cache as it was.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// `sqlite3_config` is refused once SQLite has initialized (the first connection opened before this ran).
    #[error("sqlite was initialized before the page cache wrapper could be installed (sqlite3_config: {rc})")]
    SqliteStarted { rc: c_int },
    #[error("the default page cache lacks method {method}")]
    MissingMethod { method: &'static str },
    #[error("the page cache wrapper was already installed")]
    AlreadyInstalled,
}

/// What the wrapper did on the calling thread; for tests and diagnosis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `xTruncate` calls answered without `pcache1`: no page at or above the limit could be cached.
    pub skipped_truncates: u64,
    /// `xTruncate` calls passed on to `pcache1`.
    pub delegated_truncates: u64,
    /// Pages rekeyed to the lock-byte page number (`balance_nonroot`'s temporary key), which the wrapper keeps out of
    /// its bound.
    pub temporary_rekeys: u64,
}

/// Puts the wrapper in front of SQLite's default page cache. Must run before SQLite initializes, that is before the
/// first connection opens, and not concurrently with any other SQLite call (`sqlite3_config` is not thread-safe);
/// `db::open` calls it once, first. On error SQLite keeps its default page cache and works as before.
pub fn install() -> Result<(), InstallError> {
    let mut default = ffi::sqlite3_pcache_methods2 {
        iVersion: 0,
        pArg: ptr::null_mut(),
        xInit: None,
        xShutdown: None,
        xCreate: None,
        xCachesize: None,
        xPagecount: None,
        xFetch: None,
        xUnpin: None,
        xRekey: None,
        xTruncate: None,
        xDestroy: None,
        xShrink: None,
    };
    // SAFETY: GETPCACHE2 takes one `sqlite3_pcache_methods2*` and copies the current methods into it; `default` is a
    // valid, writable struct of that type. Our caller guarantees no other thread is inside SQLite.
    let rc = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETPCACHE2, &raw mut default) };
    if rc != ffi::SQLITE_OK {
        return Err(InstallError::SqliteStarted { rc });
    }
    let inner = Inner::from_methods(&default)?;
    if INNER.set(inner).is_err() {
        return Err(InstallError::AlreadyInstalled);
    }
    let ours = ffi::sqlite3_pcache_methods2 {
        iVersion: default.iVersion,
        pArg: ptr::null_mut(),
        xInit: Some(x_init),
        xShutdown: Some(x_shutdown),
        xCreate: Some(x_create),
        xCachesize: Some(x_cachesize),
        xPagecount: Some(x_pagecount),
        xFetch: Some(x_fetch),
        xUnpin: Some(x_unpin),
        xRekey: Some(x_rekey),
        xTruncate: Some(x_truncate),
        xDestroy: Some(x_destroy),
        xShrink: Some(x_shrink),
    };
    // SAFETY: PCACHE2 takes one `sqlite3_pcache_methods2*` and copies the struct (sqlite3.h: "SQLite makes a copy"),
    // so `ours` may go out of scope; every method it names is a valid `extern "C"` fn of the expected signature, and
    // INNER, which they use, is set above.
    let rc = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_PCACHE2, &raw const ours) };
    if rc != ffi::SQLITE_OK {
        return Err(InstallError::SqliteStarted { rc });
    }
    INSTALLED.store(true, Ordering::Relaxed);
    Ok(())
}

/// Whether [`install`] succeeded in this process.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// The wrapper's counts on the calling thread (SQLite runs a connection's page cache on the thread using it).
pub fn thread_stats() -> Stats {
    STATS.try_with(Cell::get).unwrap_or_default()
}

/// The byte SQLite's file locks live on; its page is never a database page (sqlite3.c `PENDING_BYTE`, changed only
/// by `SQLITE_TESTCTRL_PENDING_BYTE`, which Hapnd never calls; if it were, its page would merely count as a real
/// page in the bound, making the wrapper skip less, never wrongly).
const PENDING_BYTE: u32 = 0x4000_0000;

static INNER: OnceLock<Inner> = OnceLock::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static STATS: Cell<Stats> = const {
        Cell::new(Stats { skipped_truncates: 0, delegated_truncates: 0, temporary_rekeys: 0 })
    };
}

fn count(update: impl FnOnce(&mut Stats)) {
    // `try_with`: a connection closed while its thread's locals are torn down must not panic inside SQLite.
    let _ = STATS.try_with(|stats| {
        let mut value = stats.get();
        update(&mut value);
        stats.set(value);
    });
}

type Pcache = ffi::sqlite3_pcache;
type PcachePage = ffi::sqlite3_pcache_page;

/// The default methods, each known present.
struct Inner {
    arg: *mut c_void,
    init: unsafe extern "C" fn(*mut c_void) -> c_int,
    shutdown: Option<unsafe extern "C" fn(*mut c_void)>,
    create: unsafe extern "C" fn(c_int, c_int, c_int) -> *mut Pcache,
    cachesize: unsafe extern "C" fn(*mut Pcache, c_int),
    pagecount: unsafe extern "C" fn(*mut Pcache) -> c_int,
    fetch: unsafe extern "C" fn(*mut Pcache, c_uint, c_int) -> *mut PcachePage,
    unpin: unsafe extern "C" fn(*mut Pcache, *mut PcachePage, c_int),
    rekey: unsafe extern "C" fn(*mut Pcache, *mut PcachePage, c_uint, c_uint),
    truncate: unsafe extern "C" fn(*mut Pcache, c_uint),
    destroy: unsafe extern "C" fn(*mut Pcache),
    shrink: unsafe extern "C" fn(*mut Pcache),
}

// SAFETY: `arg` is the opaque pointer SQLite's default cache is configured with (null for pcache1); it is only ever
// passed back to that cache's own xInit/xShutdown, which SQLite may call from any thread. The rest are fn pointers.
unsafe impl Send for Inner {}
// SAFETY: as for Send; `Inner` is never mutated after `install` sets it.
unsafe impl Sync for Inner {}

impl Inner {
    fn from_methods(methods: &ffi::sqlite3_pcache_methods2) -> Result<Self, InstallError> {
        fn need<T>(method: Option<T>, name: &'static str) -> Result<T, InstallError> {
            method.ok_or(InstallError::MissingMethod { method: name })
        }
        Ok(Inner {
            arg: methods.pArg,
            init: need(methods.xInit, "xInit")?,
            shutdown: methods.xShutdown,
            create: need(methods.xCreate, "xCreate")?,
            cachesize: need(methods.xCachesize, "xCachesize")?,
            pagecount: need(methods.xPagecount, "xPagecount")?,
            fetch: need(methods.xFetch, "xFetch")?,
            unpin: need(methods.xUnpin, "xUnpin")?,
            rekey: need(methods.xRekey, "xRekey")?,
            truncate: need(methods.xTruncate, "xTruncate")?,
            destroy: need(methods.xDestroy, "xDestroy")?,
            shrink: need(methods.xShrink, "xShrink")?,
        })
    }
}

fn inner() -> &'static Inner {
    INNER
        .get()
        .expect("SQLite calls the wrapper's methods only after install set INNER")
}

/// One cache: the default cache it wraps, and what may be in it.
///
/// Invariant: every page in `inner` has a key below `end`, or the key `lock_page` with `lock_page_held` set.
struct Cache {
    inner: *mut Pcache,
    methods: &'static Inner,
    /// One past the largest key, other than `lock_page`, that a page of this cache was given (0: none).
    end: AtomicU64,
    /// `PENDING_BYTE / szPage + 1`, the lock-byte page's number for this cache's page size.
    lock_page: c_uint,
    /// A page may sit at `lock_page`.
    lock_page_held: AtomicBool,
}

impl Cache {
    fn note_key(&self, key: c_uint) {
        if key == self.lock_page {
            self.lock_page_held.store(true, Ordering::Relaxed);
        } else if u64::from(key) >= self.end.load(Ordering::Relaxed) {
            self.end.store(u64::from(key) + 1, Ordering::Relaxed);
        }
    }

    /// Whether a page with a key at or above `limit` may be in the cache.
    fn may_hold_from(&self, limit: c_uint) -> bool {
        u64::from(limit) < self.end.load(Ordering::Relaxed)
            || (limit <= self.lock_page && self.lock_page_held.load(Ordering::Relaxed))
    }

    /// After `inner` dropped every page at or above `limit`.
    fn dropped_from(&self, limit: c_uint) {
        if u64::from(limit) < self.end.load(Ordering::Relaxed) {
            self.end.store(u64::from(limit), Ordering::Relaxed);
        }
        if limit <= self.lock_page {
            self.lock_page_held.store(false, Ordering::Relaxed);
        }
    }
}

/// # Safety
/// `p` must be a cache returned by [`x_create`] and not yet passed to [`x_destroy`].
unsafe fn cache<'a>(p: *mut Pcache) -> &'a Cache {
    // SAFETY: per the contract, `p` is a live `Box<Cache>` from `x_create`; SQLite hands each method the pointer
    // xCreate returned, and the box is freed only in xDestroy, after which SQLite never uses the handle.
    unsafe { &*(p as *const Cache) }
}

unsafe extern "C" fn x_init(_arg: *mut c_void) -> c_int {
    let inner = inner();
    // SAFETY: SQLite serializes xInit; we pass the default cache's own argument to its own xInit.
    unsafe { (inner.init)(inner.arg) }
}

unsafe extern "C" fn x_shutdown(_arg: *mut c_void) {
    let inner = inner();
    if let Some(shutdown) = inner.shutdown {
        // SAFETY: called only from sqlite3_shutdown, after xInit; the default cache's own argument.
        unsafe { shutdown(inner.arg) }
    }
}

unsafe extern "C" fn x_create(sz_page: c_int, sz_extra: c_int, purgeable: c_int) -> *mut Pcache {
    let methods = inner();
    // SAFETY: the arguments are SQLite's own, passed through unchanged.
    let wrapped = unsafe { (methods.create)(sz_page, sz_extra, purgeable) };
    if wrapped.is_null() {
        return ptr::null_mut();
    }
    // szPage is a power of two from 512 to 65536 (sqlite3.h), so this is the lock-byte page's number.
    let lock_page = PENDING_BYTE / u32::try_from(sz_page.max(1)).unwrap_or(1) + 1;
    let cache = Box::new(Cache {
        inner: wrapped,
        methods,
        end: AtomicU64::new(0),
        lock_page,
        lock_page_held: AtomicBool::new(false),
    });
    Box::into_raw(cache) as *mut Pcache
}

unsafe extern "C" fn x_cachesize(p: *mut Pcache, n: c_int) {
    // SAFETY: SQLite passes a handle from xCreate (contract of `cache`).
    let cache = unsafe { cache(p) };
    // SAFETY: the wrapped handle, with SQLite's argument.
    unsafe { (cache.methods.cachesize)(cache.inner, n) }
}

unsafe extern "C" fn x_pagecount(p: *mut Pcache) -> c_int {
    // SAFETY: SQLite passes a handle from xCreate (contract of `cache`).
    let cache = unsafe { cache(p) };
    // SAFETY: the wrapped handle.
    unsafe { (cache.methods.pagecount)(cache.inner) }
}

unsafe extern "C" fn x_fetch(p: *mut Pcache, key: c_uint, create: c_int) -> *mut PcachePage {
    // SAFETY: SQLite passes a handle from xCreate (contract of `cache`).
    let cache = unsafe { cache(p) };
    // SAFETY: the wrapped handle, with SQLite's arguments; the page returned belongs to the wrapped cache, which is
    // what SQLite later hands back to xUnpin and xRekey.
    let page = unsafe { (cache.methods.fetch)(cache.inner, key, create) };
    if !page.is_null() {
        cache.note_key(key);
    }
    page
}

unsafe extern "C" fn x_unpin(p: *mut Pcache, page: *mut PcachePage, discard: c_int) {
    // SAFETY: SQLite passes a handle from xCreate (contract of `cache`).
    let cache = unsafe { cache(p) };
    // SAFETY: `page` came from the wrapped cache's xFetch (x_fetch returns it unchanged).
    unsafe { (cache.methods.unpin)(cache.inner, page, discard) }
}

unsafe extern "C" fn x_rekey(p: *mut Pcache, page: *mut PcachePage, old: c_uint, new: c_uint) {
    // SAFETY: SQLite passes a handle from xCreate (contract of `cache`).
    let cache = unsafe { cache(p) };
    // SAFETY: `page` came from the wrapped cache's xFetch; the keys are SQLite's.
    unsafe { (cache.methods.rekey)(cache.inner, page, old, new) }
    if new == cache.lock_page {
        count(|stats| stats.temporary_rekeys += 1);
    }
    cache.note_key(new);
    if old == cache.lock_page {
        // Keys are unique in a cache, so the one page at the lock-byte key just left it.
        cache.lock_page_held.store(false, Ordering::Relaxed);
    }
}

unsafe extern "C" fn x_truncate(p: *mut Pcache, limit: c_uint) {
    // SAFETY: SQLite passes a handle from xCreate (contract of `cache`).
    let cache = unsafe { cache(p) };
    if !cache.may_hold_from(limit) {
        // Nothing at or above `limit` is cached: pcache1 would drop nothing, only lower its iMaxKey hint.
        count(|stats| stats.skipped_truncates += 1);
        return;
    }
    // SAFETY: the wrapped handle, with SQLite's limit.
    unsafe { (cache.methods.truncate)(cache.inner, limit) }
    cache.dropped_from(limit);
    count(|stats| stats.delegated_truncates += 1);
}

unsafe extern "C" fn x_destroy(p: *mut Pcache) {
    // SAFETY: SQLite passes a handle from xCreate and never uses it after this call, so the box can be reclaimed.
    let cache = unsafe { Box::from_raw(p as *mut Cache) };
    // SAFETY: the wrapped handle, destroyed exactly once, here.
    unsafe { (cache.methods.destroy)(cache.inner) }
}

unsafe extern "C" fn x_shrink(p: *mut Pcache) {
    // SAFETY: SQLite passes a handle from xCreate (contract of `cache`).
    let cache = unsafe { cache(p) };
    // SAFETY: the wrapped handle.
    unsafe { (cache.methods.shrink)(cache.inner) }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use rusqlite::{Connection, params};

    use super::*;
    use crate::db::{self, Access, Durability};

    /// A small deterministic generator (splitmix64), so a failure replays.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// What the database must hold: `kv` (a WITHOUT ROWID table keyed by random blobs, so inserts land all over its
    /// b-tree and splits swap page numbers) and `big` (rows of about a page each, to grow and shrink the file).
    #[derive(Clone, Default, PartialEq, Debug)]
    struct Model {
        kv: BTreeMap<Vec<u8>, Vec<u8>>,
        big: BTreeMap<i64, Vec<u8>>,
    }

    const SCHEMA: &str = "
        CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL, r INTEGER NOT NULL) WITHOUT ROWID;
        CREATE INDEX kv_r ON kv (r);
        CREATE TABLE big (id INTEGER PRIMARY KEY, pad BLOB NOT NULL);";

    fn page_count(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "page_count", |row| row.get(0))
            .expect("page_count")
    }

    fn read_back(conn: &Connection) -> Model {
        let mut model = Model::default();
        let mut kv = conn.prepare("SELECT k, v FROM kv ORDER BY k").expect("prepare kv");
        for row in kv
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query kv")
        {
            let (k, v) = row.expect("kv row");
            model.kv.insert(k, v);
        }
        let mut big = conn
            .prepare("SELECT id, pad FROM big ORDER BY id")
            .expect("prepare big");
        for row in big
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query big")
        {
            let (id, pad) = row.expect("big row");
            model.big.insert(id, pad);
        }
        model
    }

    fn integrity(conn: &Connection) -> String {
        conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("integrity_check")
    }

    fn insert_kv(conn: &Connection, model: &mut Model, rng: &mut Rng, rows: usize) {
        let mut insert = conn
            .prepare_cached("INSERT OR REPLACE INTO kv (k, v, r) VALUES (?1, ?2, ?3)")
            .expect("prepare insert kv");
        for _ in 0..rows {
            let key = rng.bytes(16);
            let value_len = 20 + rng.below(400) as usize;
            let value = rng.bytes(value_len);
            let r = rng.next() as i64;
            insert.execute(params![key, value, r]).expect("insert kv");
            model.kv.insert(key, value);
        }
    }

    fn delete_kv(conn: &Connection, model: &mut Model, rng: &mut Rng, rows: usize) {
        let mut delete = conn
            .prepare_cached("DELETE FROM kv WHERE k = ?1")
            .expect("prepare delete kv");
        for _ in 0..rows {
            let from = rng.bytes(16);
            let Some(key) = model.kv.range(from..).next().map(|(k, _)| k.clone()) else {
                continue;
            };
            assert_eq!(delete.execute(params![key]).expect("delete kv"), 1);
            model.kv.remove(&key);
        }
    }

    fn insert_big(conn: &Connection, model: &mut Model, rng: &mut Rng, rows: usize) {
        let mut insert = conn
            .prepare_cached("INSERT INTO big (id, pad) VALUES (?1, ?2)")
            .expect("prepare insert big");
        let first = model.big.last_key_value().map_or(1, |(id, _)| id + 1);
        for id in first..first + rows as i64 {
            let pad = rng.bytes(3000);
            insert.execute(params![id, pad]).expect("insert big");
            model.big.insert(id, pad);
        }
    }

    /// What one workload saw happen, beyond the data being right.
    #[derive(Debug, Default)]
    struct Seen {
        /// A savepoint rollback gave back the pages its statements had added.
        savepoint_shrank: bool,
        /// A commit made the file smaller (auto_vacuum) than a page number the cache had held.
        commit_shrank: bool,
    }

    /// Runs commits of random-key inserts, deletes, savepoints that grow the file and roll back, whole transactions
    /// rolled back, and commits by a second connection (which make the first drop its cache), checking the
    /// database against a model all along.
    fn run_workload(path: &Path, auto_vacuum: &str, seed: u64) -> Seen {
        let conn = db::open(path, Access::ReadWrite, Durability::Normal).expect("open");
        conn.pragma_update(None, "auto_vacuum", auto_vacuum)
            .expect("auto_vacuum");
        conn.execute_batch(SCHEMA).expect("schema");
        let other = db::open(path, Access::ReadWrite, Durability::Normal).expect("open another");
        let mut rng = Rng(seed);
        let mut model = Model::default();
        let mut seen = Seen::default();
        let mut largest = 0;

        for round in 0..120u32 {
            let before = model.clone();
            conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
            insert_kv(&conn, &mut model, &mut rng, 40);
            if round % 4 == 3 {
                delete_kv(&conn, &mut model, &mut rng, 30);
            }
            if round % 5 == 0 {
                // A request that allocates pages and then fails: its savepoint gives them back.
                let start = page_count(&conn);
                conn.execute_batch("SAVEPOINT request").expect("savepoint");
                let mut doomed = model.clone();
                // More rows of about a page than there are free pages, so the file must grow.
                let free: i64 = conn
                    .pragma_query_value(None, "freelist_count", |row| row.get(0))
                    .expect("freelist_count");
                insert_big(&conn, &mut doomed, &mut rng, free as usize + 40);
                insert_kv(&conn, &mut doomed, &mut rng, 80);
                assert!(page_count(&conn) > start, "the savepoint grew the file");
                conn.execute_batch("ROLLBACK TO request; RELEASE request")
                    .expect("roll back the savepoint");
                seen.savepoint_shrank |= page_count(&conn) == start;
            }
            if round % 10 == 2 {
                insert_big(&conn, &mut model, &mut rng, 50);
            }
            if round % 10 == 7 {
                // Drop the big rows: with auto_vacuum the commit truncates the file below pages the cache holds.
                conn.execute("DELETE FROM big", []).expect("delete big");
                model.big.clear();
            }
            largest = largest.max(page_count(&conn));
            if round % 11 == 6 {
                conn.execute_batch("ROLLBACK").expect("rollback");
                model = before;
            } else {
                conn.execute_batch("COMMIT").expect("commit");
                seen.commit_shrank |= page_count(&conn) < largest;
            }
            if round % 9 == 4 {
                // Another connection commits, so the next transaction here starts from an emptied cache.
                other.execute_batch("BEGIN IMMEDIATE").expect("other begin");
                insert_kv(&other, &mut model, &mut rng, 30);
                delete_kv(&other, &mut model, &mut rng, 10);
                other.execute_batch("COMMIT").expect("other commit");
            }
            if round % 20 == 19 {
                assert_eq!(read_back(&conn), model, "round {round}: the data read back");
            }
        }
        assert_eq!(integrity(&conn), "ok");
        assert_eq!(read_back(&conn), model, "the data read back");
        drop(other);
        drop(conn);

        let fresh = db::open(path, Access::ReadOnly, Durability::Normal).expect("reopen");
        assert_eq!(integrity(&fresh), "ok");
        assert_eq!(read_back(&fresh), model, "the data read back by a new connection");
        seen
    }

    #[test]
    fn commits_skip_empty_truncations_and_keep_the_data_right() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Opening a connection installs the wrapper; every other test opens through `db::open` too.
        drop(db::open(&dir.path().join("first.db"), Access::ReadWrite, Durability::Normal).expect("open"));
        assert!(installed(), "the wrapper is in front of SQLite's page cache");

        let start = thread_stats();
        let seen = run_workload(&dir.path().join("plain.db"), "NONE", 1);
        assert!(seen.savepoint_shrank, "{seen:?}");
        let seen = run_workload(&dir.path().join("vacuumed.db"), "FULL", 2);
        assert!(seen.savepoint_shrank && seen.commit_shrank, "{seen:?}");
        let stats = thread_stats();

        let rekeys = stats.temporary_rekeys - start.temporary_rekeys;
        let skipped = stats.skipped_truncates - start.skipped_truncates;
        let delegated = stats.delegated_truncates - start.delegated_truncates;
        assert!(
            rekeys > 0,
            "b-tree balancing swapped pages through the lock-byte page number"
        );
        assert!(skipped > 0, "commits with nothing to drop skipped pcache1");
        assert!(delegated > 0, "truncations that drop pages still reach pcache1");
    }

    /// The pattern of the finding: balance_nonroot swaps two page numbers through the lock-byte page's, and the
    /// commit after it truncates above the database's last page. That truncation has nothing to drop, and is
    /// skipped; one below the last page still drops what it must.
    #[test]
    fn a_swap_through_the_lock_page_leaves_the_next_commit_nothing_to_scan() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(db::open(&dir.path().join("init.db"), Access::ReadWrite, Durability::Normal).expect("open"));
        assert!(installed());
        let lock_page = PENDING_BYTE / 4096 + 1;
        // SAFETY: SQLite is initialized; the arguments are those SQLite passes (see the test below).
        let p = unsafe { x_create(4096, 64, 1) };
        assert!(!p.is_null());
        // SAFETY: `p` is live until x_destroy; room for every page, so none is evicted.
        unsafe { x_cachesize(p, 100) };
        // SAFETY: `p` is live; create flag 2 allocates.
        let pages: Vec<*mut PcachePage> = (1..=10).map(|key| unsafe { x_fetch(p, key, 2) }).collect();
        assert!(pages.iter().all(|page| !page.is_null()));
        let (three, seven) = (pages[2], pages[6]);
        let start = thread_stats();
        // SAFETY: both pages are pinned; each new key is free when it is taken, as in balance_nonroot.
        unsafe {
            x_rekey(p, seven, 7, lock_page);
            x_rekey(p, three, 3, 7);
            x_rekey(p, seven, lock_page, 3);
        }
        for page in pages {
            // SAFETY: every page is pinned, fetched from `p`.
            unsafe { x_unpin(p, page, 0) };
        }

        let before = thread_stats();
        // SAFETY: `p` is live.
        unsafe { x_truncate(p, 11) };
        let after = thread_stats();
        assert_eq!(after.temporary_rekeys - start.temporary_rekeys, 1);
        assert_eq!(
            after.skipped_truncates - before.skipped_truncates,
            1,
            "nothing at or above 11 is cached"
        );

        // SAFETY: `p` is live.
        unsafe { x_truncate(p, 5) };
        let last = thread_stats();
        assert_eq!(
            last.delegated_truncates - after.delegated_truncates,
            1,
            "pages 5 to 10 are cached"
        );
        // SAFETY: `p` is live; create 0 only looks, and a page found is unpinned again at once.
        unsafe {
            assert!(x_fetch(p, 5, 0).is_null() && x_fetch(p, 10, 0).is_null());
            let four = x_fetch(p, 4, 0);
            assert!(!four.is_null(), "pages below the limit stay");
            x_unpin(p, four, 0);
        }
        // SAFETY: `p` came from x_create and is not used after this.
        unsafe { x_destroy(p) };
    }

    /// Drives one wrapped cache directly with random fetches, unpins, rekeys (the balance_nonroot swap through the
    /// lock-byte page number among them) and truncations, and checks after every truncation that no page at or above
    /// its limit can still be fetched: the one promise of xTruncate, whether the wrapper skipped pcache1 or not.
    #[test]
    fn no_page_a_truncation_must_drop_survives_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(db::open(&dir.path().join("init.db"), Access::ReadWrite, Durability::Normal).expect("open"));
        assert!(installed());

        const SZ_PAGE: c_int = 4096;
        let lock_page = PENDING_BYTE / SZ_PAGE as u32 + 1;
        // SAFETY: SQLite is initialized (a connection opened), so pcache1 is ready; the arguments are those SQLite
        // passes (a power-of-two page size, szExtra >= 8 and < 250, purgeable).
        let p = unsafe { x_create(SZ_PAGE, 64, 1) };
        assert!(!p.is_null());
        // SAFETY: `p` is live until x_destroy below; a small cache, so pcache1 also evicts unpinned pages.
        unsafe { x_cachesize(p, 50) };

        let mut rng = Rng(7);
        let mut pinned: BTreeMap<c_uint, *mut PcachePage> = BTreeMap::new();
        let mut used = std::collections::BTreeSet::new();
        let random_key = |rng: &mut Rng| match rng.below(20) {
            0 => lock_page,
            1 => 100_000 + rng.below(10) as c_uint,
            _ => 1 + rng.below(200) as c_uint,
        };
        let (mut skipped, mut delegated) = (0, 0);
        for _ in 0..20_000 {
            match rng.below(10) {
                0..=3 => {
                    let key = random_key(&mut rng);
                    let create = rng.below(3) as c_int;
                    // SAFETY: `p` is live; any key and create flag are valid for xFetch.
                    let page = unsafe { x_fetch(p, key, create) };
                    if !page.is_null() {
                        used.insert(key);
                        pinned.insert(key, page);
                    }
                }
                4..=5 => {
                    let Some(&key) = pinned.keys().nth(rng.below(pinned.len().max(1) as u64) as usize) else {
                        continue;
                    };
                    let page = pinned.remove(&key).expect("just listed");
                    // SAFETY: `page` is pinned, fetched from `p`.
                    unsafe { x_unpin(p, page, (rng.below(4) == 0) as c_int) };
                }
                6..=7 => {
                    // A rekey as sqlite3PcacheMove does it: drop whatever unpinned page holds the new key first.
                    let Some(&old) = pinned.keys().nth(rng.below(pinned.len().max(1) as u64) as usize) else {
                        continue;
                    };
                    let new = if rng.below(3) == 0 {
                        lock_page
                    } else {
                        random_key(&mut rng)
                    };
                    if pinned.contains_key(&new) {
                        continue;
                    }
                    // SAFETY: `p` is live; a page found is unpinned-then-pinned by this fetch and discarded at once.
                    unsafe {
                        let other = x_fetch(p, new, 0);
                        if !other.is_null() {
                            x_unpin(p, other, 1);
                        }
                    }
                    let page = pinned.remove(&old).expect("just listed");
                    // SAFETY: `page` is pinned at `old`, and no page is at `new` (just dropped).
                    unsafe { x_rekey(p, page, old, new) };
                    used.insert(new);
                    pinned.insert(new, page);
                }
                _ => {
                    let limit = match rng.below(8) {
                        0 => lock_page + rng.below(2) as c_uint,
                        1 => 1 + rng.below(2) as c_uint,
                        _ => 1 + rng.below(220) as c_uint,
                    };
                    let before = thread_stats();
                    // SAFETY: `p` is live; pinned pages at or above `limit` become unpinned and are dropped, and
                    // are forgotten here.
                    unsafe { x_truncate(p, limit) };
                    let after = thread_stats();
                    skipped += after.skipped_truncates - before.skipped_truncates;
                    delegated += after.delegated_truncates - before.delegated_truncates;
                    pinned.retain(|&key, _| key < limit);
                    for &key in used.range(limit..) {
                        // SAFETY: `p` is live; with create 0 xFetch only looks.
                        let page = unsafe { x_fetch(p, key, 0) };
                        assert!(page.is_null(), "page {key} survived a truncation at {limit}");
                    }
                }
            }
        }
        // SAFETY: `p` came from x_create and is not used after this.
        unsafe { x_destroy(p) };
        assert!(skipped > 0 && delegated > 0, "skipped {skipped}, delegated {delegated}");
    }

    #[test]
    fn installing_after_sqlite_started_is_refused_and_harmless() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = db::open(&dir.path().join("late.db"), Access::ReadWrite, Durability::Normal).expect("open");
        let err = install().expect_err("SQLite is initialized");
        assert!(
            matches!(err, InstallError::SqliteStarted { rc: ffi::SQLITE_MISUSE }),
            "{err}"
        );
        assert!(installed());
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .expect("the connection still works");
    }
}
