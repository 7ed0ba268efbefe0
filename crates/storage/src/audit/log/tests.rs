//! Tamper, truncation, recovery and concurrency tests of the audit log.

use super::*;

fn entry(i: u64) -> AuditEntry {
    AuditEntry::with_fields("test.append", "operator", &[("i", &i.to_string())])
}

fn log_with(dir: &Path, n: u64) -> Vec<Appended> {
    let log = AuditLog::open(dir).unwrap();
    (0..n).map(|i| log.append(entry(i)).unwrap()).collect()
}

/// Byte ranges of each frame, found by walking the length prefixes.
fn frames(dir: &Path) -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
    let bytes = fs::read(dir.join(LOG)).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push(at..at + len + FRAME_OVERHEAD);
        at += len + FRAME_OVERHEAD;
    }
    (bytes, out)
}

fn rewrite(dir: &Path, parts: Vec<&[u8]>) {
    fs::write(dir.join(LOG), parts.concat()).unwrap();
}

#[test]
fn append_reopen_verify_tail() {
    let dir = tempfile::tempdir().unwrap();
    let appended = log_with(dir.path(), 10);
    assert_eq!(appended[3].seq, 3);
    let log = AuditLog::open(dir.path()).unwrap();
    assert_eq!(log.len(), 10);
    assert_eq!(log.recovered_bytes(), 0);
    let more = log.append_batch((10..15).map(entry).collect()).unwrap();
    assert_eq!(
        more.iter().map(|a| a.seq).collect::<Vec<_>>(),
        vec![10, 11, 12, 13, 14]
    );
    drop(log);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.records, 15);
    assert_eq!(report.head_records, 15);
    assert_eq!(report.last_hash, Some(more[4].hash));
    let t = tail(dir.path(), 3).unwrap();
    assert_eq!(
        t.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![12, 13, 14]
    );
    let fields = t[0].fields().unwrap();
    assert_eq!(fields.0, vec![("i".to_string(), "12".to_string())]);
}

#[test]
fn a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _log = AuditLog::open(dir.path()).unwrap();
    assert!(matches!(
        AuditLog::open(dir.path()),
        Err(AuditError::Locked(_))
    ));
}

#[test]
fn concurrent_appends_are_all_durable_and_chained() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let log = &log;
            s.spawn(move || {
                for i in 0..50 {
                    log.append(entry(t * 1000 + i)).unwrap();
                }
            });
        }
    });
    drop(log);
    assert_eq!(verify(dir.path()).unwrap().records, 200);
}

#[test]
fn modification_anywhere_is_detected() {
    for victim in [0, 1, 7, 18, 19] {
        let dir = tempfile::tempdir().unwrap();
        log_with(dir.path(), 20);
        let (mut bytes, frames) = frames(dir.path());
        // Flip one byte inside the record's payload.
        bytes[frames[victim].start + 10] ^= 1;
        fs::write(dir.path().join(LOG), &bytes).unwrap();
        let err = verify(dir.path()).unwrap_err();
        assert!(
            matches!(err, AuditError::Corrupt { seq, .. } if seq == victim as u64),
            "victim {victim}: {err}"
        );
        assert!(
            AuditLog::open(dir.path()).is_err(),
            "a writer refuses a damaged log"
        );
    }
}

#[test]
fn a_consistent_rewrite_of_one_record_breaks_the_chain_or_head() {
    for victim in [0usize, 10, 19] {
        let dir = tempfile::tempdir().unwrap();
        log_with(dir.path(), 20);
        let (bytes, frames) = frames(dir.path());
        let f = &frames[victim];
        let mut record: AuditRecord =
            decode("r", &bytes[f.start + 4..f.end - 32], MAX_RECORD).unwrap();
        record.actor = "mallory".into();
        let (forged, _) = record.to_frame();
        rewrite(
            dir.path(),
            vec![&bytes[..f.start], &forged, &bytes[f.end..]],
        );
        let err = verify(dir.path()).unwrap_err();
        if victim == 19 {
            assert!(matches!(err, AuditError::HeadMismatch { seq: 19 }), "{err}");
        } else {
            assert!(
                matches!(err, AuditError::Corrupt { seq, .. } if seq == victim as u64 + 1),
                "{err}"
            );
        }
    }
}

#[test]
fn deletion_anywhere_is_detected() {
    for victim in [0usize, 5, 19] {
        let dir = tempfile::tempdir().unwrap();
        log_with(dir.path(), 20);
        let (bytes, frames) = frames(dir.path());
        let f = &frames[victim];
        rewrite(dir.path(), vec![&bytes[..f.start], &bytes[f.end..]]);
        let err = verify(dir.path()).unwrap_err();
        match victim {
            19 => assert!(
                matches!(
                    err,
                    AuditError::Truncated {
                        expected: 20,
                        found: 19
                    }
                ),
                "{err}"
            ),
            _ => assert!(
                matches!(err, AuditError::Corrupt { seq, .. } if seq == victim as u64),
                "{err}"
            ),
        }
    }
}

#[test]
fn reordering_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 20);
    let (bytes, frames) = frames(dir.path());
    let (a, b) = (&frames[8], &frames[9]);
    rewrite(
        dir.path(),
        vec![
            &bytes[..a.start],
            &bytes[b.clone()],
            &bytes[a.clone()],
            &bytes[b.end..],
        ],
    );
    assert!(matches!(
        verify(dir.path()).unwrap_err(),
        AuditError::Corrupt { seq: 8, .. }
    ));
}

#[test]
fn truncation_at_any_point_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 20);
    let (bytes, frames) = frames(dir.path());
    for cut in [
        0,
        1,
        frames[5].end,
        frames[19].start,
        frames[19].start + 3,
        bytes.len() - 1,
    ] {
        rewrite(dir.path(), vec![&bytes[..cut]]);
        let err = verify(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                AuditError::Truncated { .. } | AuditError::Corrupt { .. }
            ),
            "cut at {cut}: {err}"
        );
        assert!(AuditLog::open(dir.path()).is_err(), "cut at {cut}");
    }
    rewrite(dir.path(), vec![&bytes]);
    fs::remove_file(dir.path().join(HEAD)).unwrap();
    assert!(matches!(
        verify(dir.path()).unwrap_err(),
        AuditError::BadHead("missing")
    ));
}

#[test]
fn a_torn_final_record_beyond_head_is_cut_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let appended = log_with(dir.path(), 5);
    let (bytes, _) = frames(dir.path());
    // A crash mid-append: a sixth record partly written, HEAD still at 5.
    let (frame, _) = AuditRecord {
        seq: 5,
        timestamp_ms: 0,
        kind: "k".into(),
        actor: "a".into(),
        details: vec![],
        prev: appended[4].hash,
    }
    .to_frame();
    for torn in [&frame[..2], &frame[..frame.len() - 1], &[0u8; 100][..]] {
        rewrite(dir.path(), vec![&bytes, torn]);
        let report = verify(dir.path()).unwrap();
        assert_eq!((report.records, report.torn_bytes), (5, torn.len() as u64));
        let log = AuditLog::open(dir.path()).unwrap();
        assert_eq!(log.recovered_bytes(), torn.len() as u64);
        assert_eq!(log.append(entry(5)).unwrap().seq, 5);
        drop(log);
        assert_eq!(verify(dir.path()).unwrap().records, 6);
        rewrite(dir.path(), vec![&bytes]);
        write_head(
            dir.path(),
            Head {
                count: 5,
                last: appended[4].hash,
            },
        )
        .unwrap();
    }
}

#[test]
fn records_synced_before_head_was_updated_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let appended = log_with(dir.path(), 6);
    write_head(
        dir.path(),
        Head {
            count: 4,
            last: appended[3].hash,
        },
    )
    .unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    assert_eq!(log.len(), 6);
    drop(log);
    assert_eq!(verify(dir.path()).unwrap().head_records, 6);
}

#[test]
fn oversized_entries_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let big = AuditEntry {
        kind: "k".repeat(65),
        actor: "a".into(),
        details: vec![],
    };
    assert!(matches!(log.append(big), Err(AuditError::EntryTooLarge(_))));
    assert!(log.is_empty());
}
