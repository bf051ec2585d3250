//! Readying members for reading: stored members in place, deflated ones decompressed once
//! into a byte-budgeted LRU in memory or an unlinked spill file.

use super::*;
// ---------------------------------------------------------------------------------------------
// Member data
// ---------------------------------------------------------------------------------------------

/// A member ready for reading. Holding one keeps its bytes alive even after cache eviction.
#[derive(Debug, Clone)]
pub enum MemberData {
    /// Decompressed bytes in memory.
    Memory(Arc<[u8]>),
    /// A stored member, read straight from the `.whl` at `offset`.
    InPlace {
        file: Arc<File>,
        offset: u64,
        len: u64,
    },
    /// Decompressed into an unlinked temporary file holding exactly the member's bytes.
    Spilled(Arc<File>),
}

impl MemberData {
    /// Read up to `len` bytes at `offset`: short at end of data, empty past it.
    pub fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let (file, base, total) = match self {
            MemberData::Memory(bytes) => {
                let n = clamp_read(bytes.len() as u64, offset, len);
                let start = if n == 0 { 0 } else { offset as usize };
                return Ok(bytes[start..start + n].to_vec());
            }
            MemberData::InPlace {
                file,
                offset: base,
                len: total,
            } => (file, *base, *total),
            // One fstat per read keeps the variant a bare file (the spill file's length is
            // exactly the member's size).
            MemberData::Spilled(file) => (file, 0, file.metadata()?.len()),
        };
        let n = clamp_read(total, offset, len);
        if n == 0 {
            return Ok(Vec::new());
        }
        let buf = crate::layer::read_file_at(file, base + offset, n)?;
        if buf.len() < n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(buf)
    }

    /// A file holding exactly the member's bytes (only for spilled members), e.g. to hand its
    /// descriptor to the kernel.
    pub fn backing_file(&self) -> Option<Arc<File>> {
        match self {
            MemberData::Spilled(file) => Some(Arc::clone(file)),
            _ => None,
        }
    }
}

/// How many bytes a read of `len` at `offset` returns from data of length `total`.
fn clamp_read(total: u64, offset: u64, len: usize) -> usize {
    let left = total.saturating_sub(offset);
    usize::try_from(left).map_or(len, |left| left.min(len))
}

// ---------------------------------------------------------------------------------------------
// MemberCache
// ---------------------------------------------------------------------------------------------

type Key = (u64, usize);

/// An LRU map whose capacity is counted in bytes: inserting evicts least recently used
/// entries until the total is within budget.
struct ByteLru<V> {
    entries: LruCache<Key, (V, u64)>,
    bytes: u64,
    budget: u64,
}

impl<V: Clone> ByteLru<V> {
    fn new(budget: u64) -> Self {
        Self {
            entries: LruCache::unbounded(),
            bytes: 0,
            budget,
        }
    }

    fn get(&mut self, key: &Key) -> Option<V> {
        self.entries.get(key).map(|(value, _)| value.clone())
    }

    fn insert(&mut self, key: Key, value: V, weight: u64) {
        if let Some((_, old)) = self.entries.put(key, (value, weight)) {
            self.bytes -= old;
        }
        self.bytes += weight;
        while self.bytes > self.budget {
            let Some((evicted, (_, w))) = self.entries.pop_lru() else {
                break;
            };
            trace!(
                archive = evicted.0,
                member = evicted.1,
                bytes = w,
                "evicted cached member"
            );
            self.bytes -= w;
        }
    }

    fn remove_archive(&mut self, id: u64) {
        let keys: Vec<Key> = self
            .entries
            .iter()
            .filter(|(key, _)| key.0 == id)
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            if let Some((_, w)) = self.entries.pop(&key) {
                self.bytes -= w;
            }
        }
    }
}

/// A per-member rendezvous so that concurrent opens of one member decompress it once.
type Slot = Arc<Mutex<Option<MemberData>>>;

struct CacheState {
    memory: ByteLru<Arc<[u8]>>,
    spilled: ByteLru<Arc<File>>,
    in_flight: HashMap<Key, Slot>,
}

impl CacheState {
    fn lookup(&mut self, key: &Key) -> Option<MemberData> {
        if let Some(bytes) = self.memory.get(key) {
            return Some(MemberData::Memory(bytes));
        }
        self.spilled.get(key).map(MemberData::Spilled)
    }

    fn store(&mut self, key: Key, data: &MemberData, size: u64) {
        match data {
            MemberData::Memory(bytes) => self.memory.insert(key, Arc::clone(bytes), size),
            MemberData::Spilled(file) => self.spilled.insert(key, Arc::clone(file), size),
            MemberData::InPlace { .. } => {}
        }
    }
}

/// Counters for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Bytes of decompressed members held in memory by the cache.
    pub memory_bytes: u64,
    /// Bytes of decompressed members held in spill files by the cache.
    pub spilled_bytes: u64,
    /// Members decompressed so far.
    pub inflations: u64,
    /// Opens answered from the cache.
    pub hits: u64,
}

/// Decompressed wheel members, shared by all archives.
///
/// Concurrency: the first thread to miss on a member becomes its leader and decompresses it
/// while holding a per-member slot; others opening the same member wait on that slot and get
/// the leader's result, so each member is decompressed once. (If the leader fails, a waiter
/// retries itself.) The global lock is never held while decompressing.
pub struct MemberCache {
    memory_budget: u64,
    spill_threshold: u64,
    spill_dir: PathBuf,
    state: Mutex<CacheState>,
    inflations: AtomicU64,
    hits: AtomicU64,
}

impl fmt::Debug for MemberCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberCache")
            .field("memory_budget", &self.memory_budget)
            .field("spill_threshold", &self.spill_threshold)
            .field("spill_dir", &self.spill_dir)
            .field("stats", &self.stats())
            .finish()
    }
}

impl MemberCache {
    /// A cache keeping at most `memory_budget` bytes of decompressed members in memory.
    /// Members larger than `spill_threshold` (or than the whole budget) are decompressed into
    /// unlinked files in `spill_dir` instead; spill files are unbudgeted unless
    /// [`MemberCache::with_spill_budget`] is used.
    pub fn new(memory_budget: u64, spill_threshold: u64, spill_dir: PathBuf) -> MemberCache {
        MemberCache {
            memory_budget,
            spill_threshold,
            spill_dir,
            state: Mutex::new(CacheState {
                memory: ByteLru::new(memory_budget),
                spilled: ByteLru::new(u64::MAX),
                in_flight: HashMap::new(),
            }),
            inflations: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    /// Limit the bytes kept in spill files (least recently used dropped first; open handles
    /// keep their file until closed).
    pub fn with_spill_budget(self, bytes: u64) -> MemberCache {
        self.state.lock().spilled.budget = bytes;
        self
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        let state = self.state.lock();
        CacheStats {
            memory_bytes: state.memory.bytes,
            spilled_bytes: state.spilled.bytes,
            inflations: self.inflations.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
        }
    }

    /// Drop every cached member of `archive` (e.g. when its layer is unmounted).
    pub fn forget_archive(&self, archive: &WheelArchive) {
        let mut state = self.state.lock();
        state.memory.remove_archive(archive.id);
        state.spilled.remove_archive(archive.id);
    }

    /// Ready a member for reading: stored members are read in place at their offset in the
    /// .whl; deflated ones are decompressed once (CRC-32 checked) and kept: in memory up to the
    /// budget (least recently used dropped first), or, if larger than spill_threshold, in an
    /// unlinked temp file in spill_dir.
    ///
    /// A stored member is read whole once, on its first open, to check its size and CRC-32
    /// (as deflated ones are when inflated), then served in place.
    pub fn open(
        &self,
        archive: &Arc<WheelArchive>,
        index: usize,
    ) -> Result<MemberData, WheelError> {
        let member = archive.member(index)?;
        if member.kind == MemberKind::Dir {
            return Err(archive.wrong_kind(member, "file"));
        }
        match member.method {
            Method::Stored => {
                if !member.verified.load(std::sync::atomic::Ordering::Relaxed) {
                    archive.read_member_into(member, &mut io::sink(), |e| {
                        WheelError::io(&archive.path, Some(&member.name), e)
                    })?;
                    member
                        .verified
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(MemberData::InPlace {
                    file: Arc::clone(&archive.file),
                    offset: archive.data_offset(member)?,
                    len: member.size,
                })
            }
            Method::Deflated => self.open_deflated(archive, index, member),
        }
    }

    fn open_deflated(
        &self,
        archive: &WheelArchive,
        index: usize,
        member: &Member,
    ) -> Result<MemberData, WheelError> {
        let key = (archive.id, index);
        let slot = {
            let mut state = self.state.lock();
            if let Some(data) = state.lookup(&key) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(data);
            }
            Arc::clone(state.in_flight.entry(key).or_default())
        };
        let mut ready = slot.lock();
        if let Some(data) = ready.as_ref() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(data.clone());
        }
        let result = self.inflate(archive, member);
        let mut state = self.state.lock();
        if let Ok(data) = &result {
            *ready = Some(data.clone());
            state.store(key, data, member.size);
        }
        if state
            .in_flight
            .get(&key)
            .is_some_and(|s| Arc::ptr_eq(s, &slot))
        {
            state.in_flight.remove(&key);
        }
        result
    }

    fn inflate(&self, archive: &WheelArchive, member: &Member) -> Result<MemberData, WheelError> {
        self.inflations.fetch_add(1, Ordering::Relaxed);
        let spill = member.size > self.spill_threshold || member.size > self.memory_budget;
        trace!(wheel = %archive.path.display(), member = %member.name, size = member.size, spill, "inflating");
        let result = if spill {
            self.inflate_to_file(archive, member)
                .map(MemberData::Spilled)
        } else {
            let mut bytes = Vec::with_capacity(member.size as usize);
            archive
                .read_member_into(member, &mut bytes, |e| {
                    WheelError::io(&archive.path, Some(&member.name), e)
                })
                .map(|()| MemberData::Memory(bytes.into()))
        };
        if let Err(e) = &result {
            debug!("{e}");
        }
        result
    }

    fn inflate_to_file(
        &self,
        archive: &WheelArchive,
        member: &Member,
    ) -> Result<Arc<File>, WheelError> {
        let spill_error = |source| WheelError::Spill {
            wheel: archive.path.clone(),
            member: member.name.to_string(),
            dir: self.spill_dir.clone(),
            source,
        };
        let file = tempfile::tempfile_in(&self.spill_dir).map_err(spill_error)?;
        {
            let mut writer = BufWriter::with_capacity(COPY_BUFFER, &file);
            archive.read_member_into(member, &mut writer, spill_error)?;
            writer.flush().map_err(spill_error)?;
        }
        Ok(Arc::new(file))
    }
}
