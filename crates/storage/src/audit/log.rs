//! Appending (with group commit), recovery, verification and reading of the audit log.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use borsh::{BorshDeserialize, BorshSerialize};
use platform_primitives::{Hash, decode, encode};

use super::AuditError;
use super::record::{AuditEntry, AuditRecord, FRAME_OVERHEAD, Frame, MAX_RECORD, read_frame};

const LOG: &str = "log";
const HEAD: &str = "HEAD";
const HEAD_TMP: &str = "HEAD.tmp";
const LOCK: &str = "LOCK";

/// What HEAD vouches for: the first `count` records are durable and the last one hashes to
/// `last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct Head {
    count: u64,
    last: Hash,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read_head(dir: &Path) -> Result<Option<Head>, AuditError> {
    let path = dir.join(HEAD);
    match fs::read(&path) {
        Ok(bytes) => decode("audit HEAD", &bytes, 64)
            .map(Some)
            .map_err(|_| AuditError::BadHead("unreadable")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Replaces HEAD atomically. The folder is not synced here: if the rename is lost in a crash
/// the older HEAD remains, which is still a true lower bound of the durable records.
fn write_head(dir: &Path, head: Head) -> std::io::Result<()> {
    let tmp = dir.join(HEAD_TMP);
    let mut f = File::create(&tmp)?;
    f.write_all(&encode(&head))?;
    f.sync_data()?;
    fs::rename(&tmp, dir.join(HEAD))
}

/// The result of reading a log from the start.
struct Scan {
    /// Well-formed, correctly chained records.
    count: u64,
    /// Hash of the last of them.
    last: Hash,
    /// Byte length of the well-formed prefix.
    valid_len: u64,
    /// A damaged final frame that a crash can explain: its offset and what is wrong.
    torn: Option<(u64, String)>,
}

/// Reads the log, checking frames, the chain and HEAD. `visit` sees each good record.
fn scan(
    path: &Path,
    head: Option<Head>,
    mut visit: impl FnMut(AuditRecord),
) -> Result<Scan, AuditError> {
    let file = File::open(path).map_err(io(path))?;
    let file_len = file.metadata().map_err(io(path))?.len();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut s = Scan {
        count: 0,
        last: Hash::ZERO,
        valid_len: 0,
        torn: None,
    };
    let mut buf = Vec::new();
    while s.valid_len < file_len {
        let offset = s.valid_len;
        let remaining = file_len - offset;
        // Read one frame (or whatever is left, if the frame runs past the end).
        buf.clear();
        let mut len_bytes = [0u8; 4];
        let header = remaining.min(4) as usize;
        reader
            .read_exact(&mut len_bytes[..header])
            .map_err(io(path))?;
        buf.extend_from_slice(&len_bytes[..header]);
        if header == 4 {
            let len = u32::from_le_bytes(len_bytes) as usize;
            let want = (len.min(MAX_RECORD) + FRAME_OVERHEAD - 4) as u64;
            let take = want.min(remaining - 4) as usize;
            buf.resize(4 + take, 0);
            reader.read_exact(&mut buf[4..]).map_err(io(path))?;
        }
        let corrupt = |reason: String| AuditError::Corrupt {
            seq: s.count,
            offset,
            reason,
        };
        let (record, hash, frame_len) = match read_frame(&buf) {
            Frame::Ok(record, hash, len) => (record, hash, len),
            bad => {
                let (reason, ends_file) = match bad {
                    Frame::Incomplete => ("the last record is incomplete".to_owned(), true),
                    Frame::Bad(reason, Some(len)) => (reason, offset + len as u64 == file_len),
                    Frame::Bad(reason, None) => (reason, false),
                    Frame::Ok(..) => unreachable!(),
                };
                let only_zeros_follow = !ends_file && rest_is_zero(path, offset)?;
                let beyond_head = head.is_none_or(|h| s.count >= h.count);
                if (ends_file || only_zeros_follow) && beyond_head {
                    s.torn = Some((offset, reason));
                    break;
                }
                return Err(corrupt(reason));
            }
        };
        if record.seq != s.count {
            return Err(corrupt(format!(
                "found record {} where record {} belongs: records were removed or reordered",
                record.seq, s.count
            )));
        }
        if record.prev != s.last {
            return Err(corrupt(
                "its previous-record hash does not match: an earlier record was changed or removed"
                    .into(),
            ));
        }
        if let Some(h) = head
            && h.count == s.count + 1
            && h.last != hash
        {
            return Err(AuditError::HeadMismatch { seq: s.count });
        }
        s.count += 1;
        s.last = hash;
        s.valid_len += frame_len as u64;
        visit(record);
    }
    if let Some(h) = head
        && s.count < h.count
    {
        return Err(AuditError::Truncated {
            expected: h.count,
            found: s.count,
        });
    }
    Ok(s)
}

fn rest_is_zero(path: &Path, offset: u64) -> Result<bool, AuditError> {
    let bytes = fs::read(path).map_err(io(path))?;
    Ok(bytes[offset as usize..].iter().all(|&b| b == 0))
}

/// The summary of a successful [`verify`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Records checked.
    pub records: u64,
    /// Hash of the last record, if any.
    pub last_hash: Option<Hash>,
    /// Records HEAD vouches for (all present and matching).
    pub head_records: u64,
    /// Bytes of a torn final record that the next writer will cut off (0 if none).
    pub torn_bytes: u64,
}

fn head_for_read(dir: &Path) -> Result<(PathBuf, Head), AuditError> {
    let log = dir.join(LOG);
    if !log.exists() {
        return Err(AuditError::Io {
            path: log,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no audit log here"),
        });
    }
    // HEAD is read before the log: HEAD never runs ahead of the durable log, so a log read
    // afterwards always contains what this HEAD vouches for.
    let head = read_head(dir)?;
    let empty = fs::metadata(&log).map_err(io(&log))?.len() == 0;
    match head {
        Some(h) => Ok((log, h)),
        None if empty => Ok((
            log,
            Head {
                count: 0,
                last: Hash::ZERO,
            },
        )),
        None => Err(AuditError::BadHead("missing")),
    }
}

/// Checks the whole log in `dir` without modifying it.
pub fn verify(dir: &Path) -> Result<VerifyReport, AuditError> {
    let (log, head) = head_for_read(dir)?;
    let s = scan(&log, Some(head), |_| {})?;
    let file_len = fs::metadata(&log).map_err(io(&log))?.len();
    Ok(VerifyReport {
        records: s.count,
        last_hash: (s.count > 0).then_some(s.last),
        head_records: head.count,
        torn_bytes: s.torn.map_or(0, |_| file_len - s.valid_len),
    })
}

/// The last `n` records of the log in `dir`, oldest first. The whole log is verified on the way.
pub fn tail(dir: &Path, n: usize) -> Result<Vec<AuditRecord>, AuditError> {
    let (log, head) = head_for_read(dir)?;
    let mut last = VecDeque::with_capacity(n.min(4096));
    scan(&log, Some(head), |r| {
        if n > 0 {
            if last.len() == n {
                last.pop_front();
            }
            last.push_back(r);
        }
    })?;
    Ok(last.into())
}

/// Where an appended record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: Hash,
}

struct State {
    /// The log file; `None` while a flushing caller is writing it.
    file: Option<File>,
    /// Encoded frames not yet written.
    pending: Vec<u8>,
    /// Records assigned so far (the next record's seq).
    next_seq: u64,
    /// Hash of the last assigned record.
    last_hash: Hash,
    /// Records written and synced.
    durable: u64,
    /// Set after a failed write: the file may hold part of a batch.
    failed: Option<String>,
}

/// An open audit log, held exclusively by this process.
pub struct AuditLog {
    dir: PathBuf,
    state: Mutex<State>,
    flushed: Condvar,
    cut_bytes: u64,
    _lock: File,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditLog({})", self.dir.display())
    }
}

impl AuditLog {
    /// Opens (creating if needed) the log in `dir`, recovering from a crash: a torn final record
    /// is cut off with a warning; any other damage is an error.
    pub fn open(dir: &Path) -> Result<AuditLog, AuditError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(AuditError::Locked(dir.to_owned()));
        }
        let log_path = dir.join(LOG);
        if !log_path.exists() {
            write_head(
                dir,
                Head {
                    count: 0,
                    last: Hash::ZERO,
                },
            )
            .map_err(io(dir))?;
            File::create(&log_path).map_err(io(&log_path))?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
        }
        let (_, head) = head_for_read(dir)?;
        let s = scan(&log_path, Some(head), |_| {})?;
        let mut cut_bytes = 0;
        if let Some((offset, reason)) = &s.torn {
            let f = OpenOptions::new()
                .write(true)
                .open(&log_path)
                .map_err(io(&log_path))?;
            cut_bytes = f.metadata().map_err(io(&log_path))?.len() - offset;
            tracing::warn!(
                log = %log_path.display(),
                offset,
                cut_bytes,
                "audit log: cutting off a torn final record left by a crash ({reason})"
            );
            f.set_len(*offset).map_err(io(&log_path))?;
            f.sync_all().map_err(io(&log_path))?;
        }
        if s.count > head.count {
            // Records synced before a crash that happened before HEAD was updated.
            write_head(
                dir,
                Head {
                    count: s.count,
                    last: s.last,
                },
            )
            .map_err(io(dir))?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        Ok(AuditLog {
            dir: dir.to_owned(),
            state: Mutex::new(State {
                file: Some(file),
                pending: Vec::new(),
                next_seq: s.count,
                last_hash: s.last,
                durable: s.count,
                failed: None,
            }),
            flushed: Condvar::new(),
            cut_bytes,
            _lock: lock,
        })
    }

    /// Bytes of a torn record cut off when this log was opened (0 after a clean shutdown).
    pub fn recovered_bytes(&self) -> u64 {
        self.cut_bytes
    }

    /// Records in the log (durable or about to be).
    pub fn len(&self) -> u64 {
        self.lock().next_seq
    }

    /// Whether the log has no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one record and returns once it is durable.
    pub fn append(&self, entry: AuditEntry) -> Result<Appended, AuditError> {
        Ok(self.append_batch(vec![entry])?[0])
    }

    /// Appends records in order and returns once all are durable.
    pub fn append_batch(&self, entries: Vec<AuditEntry>) -> Result<Vec<Appended>, AuditError> {
        for e in &entries {
            e.check()?;
        }
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut st = self.lock();
        if let Some(e) = &st.failed {
            return Err(AuditError::Failed(e.clone()));
        }
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let record = AuditRecord {
                seq: st.next_seq,
                timestamp_ms,
                kind: e.kind,
                actor: e.actor,
                details: e.details,
                prev: st.last_hash,
            };
            let (frame, hash) = record.to_frame();
            st.pending.extend_from_slice(&frame);
            st.last_hash = hash;
            out.push(Appended {
                seq: record.seq,
                hash,
            });
            st.next_seq += 1;
        }
        let target = st.next_seq;
        loop {
            if st.durable >= target {
                return Ok(out);
            }
            if let Some(e) = &st.failed {
                return Err(AuditError::Failed(e.clone()));
            }
            let Some(mut file) = st.file.take() else {
                // Another caller is flushing; our records ride in its batch or the next one.
                st = self.flushed.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            // Lead a group commit: everything pending goes out with one sync.
            let batch = std::mem::take(&mut st.pending);
            let head = Head {
                count: st.next_seq,
                last: st.last_hash,
            };
            drop(st);
            let result = file
                .write_all(&batch)
                .and_then(|()| file.sync_data())
                .and_then(|()| write_head(&self.dir, head));
            st = self.lock();
            st.file = Some(file);
            match result {
                Ok(()) => st.durable = head.count,
                Err(e) => st.failed = Some(e.to_string()),
            }
            self.flushed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod golden {
    use super::*;

    #[test]
    fn head_format() {
        let head = Head {
            count: 3,
            last: Hash([0x22; 32]),
        };
        assert_eq!(
            hex::encode(encode(&head)),
            format!("0300000000000000{}", "22".repeat(32))
        );
    }
}
