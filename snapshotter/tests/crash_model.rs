//! A seeded model test of the engine's command log and the snapshotter on
//! the simulated disk (`tiered_sys::SimFs`), issue 14.
//!
//! Each seed drives one history through a few power cuts. Between cuts, a
//! random workload: group commits of SETs, some of them one MULTI/EXEC
//! record (the command log's write path:
//! one batch, one fdatasync), rotations (seal, next segment), snapshotter
//! passes (`run_pass_on`: snapshot, archival moves, retention by size).
//! The cut comes at a random step, maybe in the middle of it (every call
//! of one kind fails from a random call on, as if the power went there),
//! maybe with the last batch written but not synced. After every cut:
//!
//! - the engine starts in strict mode (recovery, then sealing what was open
//!   and opening the next segment, as `server::start` does);
//! - its state is exactly the model of every acknowledged batch, plus the
//!   unacknowledged one, whole or not at all;
//! - every listed snapshot and sealed segment (primary or archive) verifies
//!   and a snapshotter pass succeeds;
//! - the restore chain is intact: a restore of the latest state gives the
//!   same state.
//!
//! `TIERED_CRASH_SEEDS=n` sets the number of seeds (default 2000, about
//! 4000 power cuts, ~20 s in a debug build), `TIERED_CRASH_SEED=s` replays one; a failure prints its
//! seed. `scripts/crash-model.sh` runs a longer one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tiered_engine::batch::BatchEncoder;
use tiered_engine::cmd::{Set, Transaction, Write};
use tiered_engine::db::{Db, Value};
use tiered_engine::history;
use tiered_engine::recovery::{recover_on, Recovered, RecoveryMode};
use tiered_engine::segment::{self, SegmentWriter};
use tiered_engine::snapshot;
use tiered_snapshotter::config::{Config, RestoreConfig, RestoreTarget};
use tiered_snapshotter::metrics::Metrics;
use tiered_snapshotter::pass::{run_pass_on, PassState};
use tiered_snapshotter::restore::restore_on;
use tiered_sys::{Fault, Fs, Op, OpenMode, Rule, SimFs};

const KEYS: u64 = 24;

/// splitmix64, so a seed names one history.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

type Model = BTreeMap<u64, Vec<u8>>;

fn key(k: u64) -> Vec<u8> {
    format!("k{k}").into_bytes()
}

/// The engine's start on `dir`: strict recovery, the open segments sealed
/// (or removed when empty), a fresh segment after the last seq.
fn start(fs: &Arc<dyn Fs>, dir: &Path, seed: u64) -> (Recovered, SegmentWriter) {
    let r = recover_on(fs.clone(), dir, "archived", RecoveryMode::Strict)
        .unwrap_or_else(|e| panic!("seed {seed}: strict recovery refused: {e}"));
    for open in &r.open_segments {
        match open.last_seq {
            Some(last) => {
                let f = fs.open(&open.path, OpenMode::ReadWrite).unwrap();
                segment::seal_file_on(
                    &**fs,
                    dir,
                    &open.path,
                    &*f,
                    open.first_seq,
                    last,
                    open.valid_len,
                )
                .unwrap();
            }
            None => segment::remove_file_durably_on(&**fs, dir, &open.path).unwrap(),
        }
    }
    let w = SegmentWriter::create_on(fs.clone(), dir, r.last_seq + 1, 1 << 14).unwrap();
    (r, w)
}

fn same_state(db: &Db, model: &Model) -> bool {
    (0..KEYS).all(|k| match (db.get(&key(k), 0), model.get(&k)) {
        (Some(Value::Str(v)), Some(m)) => v == m,
        (None, None) => true,
        _ => false,
    })
}

/// What a seed went through.
#[derive(Default)]
struct Stats {
    cuts: u64,
    unacked_kept: u64,
    unacked_lost: u64,
    snapshots: u64,
    archived: u64,
}

/// One seed: a history with power cuts.
fn run_seed(seed: u64) -> Stats {
    let mut stats = Stats::default();
    let dir = Path::new("/data");
    let sim = SimFs::new();
    sim.create_dir_all_durable(&dir.join("archived")).unwrap();
    let fs: Arc<dyn Fs> = sim.handle();
    let mut rng = Rng(seed);
    let mut cfg = Config::new(dir);
    cfg.keep_snapshots = 1 + rng.below(2) as usize;
    if rng.below(2) == 0 {
        cfg.retain_bytes = Some(2_000 + rng.below(20_000));
    }
    let metrics = Metrics::new();
    let stop = AtomicBool::new(false);
    let mut pass_state = PassState::default();

    let mut model = Model::new();
    let mut w = Some(start(&fs, dir, seed).1);
    let mut seq = 1u64;
    let cuts = 1 + rng.below(3);
    for cut in 0..cuts {
        let steps = 1 + rng.below(16);
        let cut_at = rng.below(steps);
        let mut pending: Option<Model> = None;
        for step in 0..steps {
            let cutting = step == cut_at;
            if cutting && rng.below(3) > 0 {
                // the power goes in the middle of this step
                let ops = [
                    Op::Write,
                    Op::Fdatasync,
                    Op::Fsync,
                    Op::FsyncDir,
                    Op::Rename,
                    Op::RenameNoreplace,
                    Op::HardLink,
                    Op::Unlink,
                    Op::Create,
                    Op::SetLen,
                ];
                sim.add_rule(Rule {
                    op: ops[rng.below(ops.len() as u64) as usize],
                    name_suffix: None,
                    skip: rng.below(4),
                    times: u64::MAX,
                    fault: Fault::Errno(libc::EIO),
                });
            }
            match rng.below(10) {
                0..=5 => {
                    let w = w.as_mut().expect("a segment writer");
                    let n = 1 + rng.below(8);
                    let mut after = model.clone();
                    let mut buf = BatchEncoder::new();
                    // now and then the writes are one MULTI/EXEC: one record
                    let txn = n > 1 && rng.below(3) == 0;
                    let mut txn_payloads = Vec::new();
                    for _ in 0..n {
                        let k = rng.below(KEYS);
                        let v = format!("v{seq}-{}", "x".repeat(rng.below(300) as usize));
                        let mut p = Vec::new();
                        Set::new(key(k), v.clone()).encode_into(&mut p);
                        if txn {
                            txn_payloads.push(p);
                        } else {
                            buf.push(1_000 + seq, &p);
                            seq += 1;
                        }
                        after.insert(k, v.into_bytes());
                    }
                    let records = if txn {
                        let p = Transaction::payload(&txn_payloads);
                        buf.push(1_000 + seq, &p);
                        seq += 1;
                        1
                    } else {
                        n
                    };
                    assert_eq!(u64::from(buf.count()), records);
                    let unsynced = cutting && rng.below(2) == 0;
                    let acked = w.append(&mut buf).is_ok() && !unsynced && w.sync().is_ok();
                    if acked {
                        model = after;
                    } else {
                        // not acknowledged: survives whole or not at all;
                        // nothing is written after it
                        pending = Some(after);
                        break;
                    }
                }
                6 | 7 => {
                    let cur = w.take().expect("a segment writer");
                    if cur.is_empty() {
                        w = Some(cur);
                    } else {
                        let next = cur.next_seq();
                        if cur.seal().is_err() {
                            break;
                        }
                        match SegmentWriter::create_on(fs.clone(), dir, next, 1 << 14) {
                            Ok(n) => w = Some(n),
                            Err(_) => break,
                        }
                    }
                }
                _ => {
                    let r = run_pass_on(&fs, &cfg, &metrics, &stop, &mut pass_state);
                    if !cutting {
                        if let Err(e) = r {
                            panic!("seed {seed}: snapshotter pass failed: {e}");
                        }
                    }
                }
            }
            if cutting {
                break;
            }
        }
        drop(w);
        sim.crash(seed.wrapping_mul(31).wrapping_add(cut));
        sim.clear_rules();

        let (r, w2) = start(&fs, dir, seed);
        w = Some(w2);
        stats.cuts += 1;
        if pending.as_ref().is_some_and(|p| same_state(&r.db, p)) {
            stats.unacked_kept += u64::from(!same_state(&r.db, &model));
            model = pending.take().expect("pending");
        } else if same_state(&r.db, &model) {
            // the unacknowledged batch, if any, was lost whole
            stats.unacked_lost += u64::from(pending.is_some());
        } else {
            panic!("seed {seed} cut {cut}: the state after recovery is neither the acknowledged one nor that plus the unacknowledged batch (last seq {})", r.last_seq);
        }
        seq = r.last_seq + 1;

        // every listed file whole; the snapshotter goes on
        let listing = history::scan_on(&*fs, dir, "archived").unwrap();
        stats.snapshots += listing.snapshots.len() as u64;
        stats.archived += listing.sealed.iter().filter(|s| s.archived).count() as u64;
        for s in &listing.sealed {
            segment::verify_segment_on(&*fs, &s.path)
                .unwrap_or_else(|e| panic!("seed {seed} cut {cut}: {e}"));
        }
        for s in &listing.snapshots {
            snapshot::verify_snapshot_on(&*fs, &s.path)
                .unwrap_or_else(|e| panic!("seed {seed} cut {cut}: {e}"));
        }
        if let Err(e) = run_pass_on(&fs, &cfg, &metrics, &stop, &mut pass_state) {
            panic!("seed {seed} cut {cut}: snapshotter pass after the cut failed: {e}");
        }
        // the restore chain: the latest state, restored
        if r.last_seq > 0 {
            let into = PathBuf::from(format!("/restore-{cut}"));
            let restored = restore_on(
                &fs,
                &RestoreConfig {
                    from: dir.to_path_buf(),
                    archive_dir_name: "archived".into(),
                    target: RestoreTarget::Latest,
                    into: into.clone(),
                },
            )
            .unwrap_or_else(|e| panic!("seed {seed} cut {cut}: restore failed: {e}"));
            assert_eq!(restored.last_seq, r.last_seq, "seed {seed} cut {cut}");
            let (_, db) = snapshot::read_snapshot_on(&*fs, &restored.snapshot).unwrap();
            assert!(
                same_state(&db, &model),
                "seed {seed} cut {cut}: the restored state differs"
            );
        }
    }
    stats
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

#[test]
fn every_acknowledged_write_survives_seeded_power_cuts_with_the_snapshotter_running() {
    let seeds: Vec<u64> = match env_u64("TIERED_CRASH_SEED") {
        Some(s) => vec![s],
        None => {
            let first = env_u64("TIERED_CRASH_FIRST_SEED").unwrap_or(0);
            (first..first + env_u64("TIERED_CRASH_SEEDS").unwrap_or(2000)).collect()
        }
    };
    let mut total = Stats::default();
    for &seed in &seeds {
        match std::panic::catch_unwind(|| run_seed(seed)) {
            Ok(s) => {
                total.cuts += s.cuts;
                total.unacked_kept += s.unacked_kept;
                total.unacked_lost += s.unacked_lost;
                total.snapshots += s.snapshots;
                total.archived += s.archived;
            }
            Err(e) => {
                eprintln!("crash model: seed {seed} failed; replay with TIERED_CRASH_SEED={seed}");
                std::panic::resume_unwind(e);
            }
        }
    }
    eprintln!(
        "crash model: {} seeds, {} power cuts, all recovered strict with every acknowledged write; unacknowledged batches kept whole {} / lost whole {}; snapshots listed after cuts {}, archived logs {}",
        seeds.len(),
        total.cuts,
        total.unacked_kept,
        total.unacked_lost,
        total.snapshots,
        total.archived
    );
    assert!(total.cuts >= seeds.len() as u64);
    if seeds.len() >= 100 {
        // the workload reaches what it claims to test
        assert!(total.unacked_kept > 0 && total.unacked_lost > 0);
        assert!(total.snapshots > 0 && total.archived > 0);
    }
}
