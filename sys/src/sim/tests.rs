use super::*;
use crate::fs::errno_of;
use crate::seam::real;
use nix::errno::Errno;
use std::collections::BTreeSet;

const PAGE: usize = 4096;

fn p(s: &str) -> &Path {
    Path::new(s)
}

fn errno_err<T>(r: io::Result<T>) -> Option<Errno> {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => errno_of(&e),
    }
}

/// A disk with a durable `/d`.
fn disk(opts: SimOptions) -> (SimFs, Arc<dyn Fs>) {
    let sim = SimFs::with_options(opts);
    sim.create_dir_all_durable(p("/d")).unwrap();
    let fs = sim.handle();
    (sim, fs)
}

/// The whole file, or None if it has no name.
fn read(fs: &dyn Fs, path: &str) -> Option<Vec<u8>> {
    let f = match fs.open(p(path), OpenMode::Read) {
        Ok(f) => f,
        Err(e) if errno_of(&e) == Some(Errno::ENOENT) => return None,
        Err(e) => panic!("open {path}: {e}"),
    };
    let mut b = vec![0u8; f.size().unwrap() as usize];
    f.read_exact_at(&mut b, 0).unwrap();
    Some(b)
}

/// Creates `path` with `data`, its data synced (not its name).
fn create_synced(fs: &dyn Fs, path: &str, data: &[u8]) {
    let f = fs.open(p(path), OpenMode::CreateNew).unwrap();
    f.write_all_at(data, 0).unwrap();
    f.fdatasync().unwrap();
}

/// The same calls on the real file system and on the simulated one give the
/// same results (contents, names, errnos).
fn conformance(fs: &dyn Fs, root: &Path) {
    let at = |s: &str| root.join(s);
    let e = |r: io::Result<()>| errno_err(r);
    let f = fs.open(&at("f"), OpenMode::CreateNew).unwrap();
    assert_eq!(
        errno_err(fs.open(&at("f"), OpenMode::CreateNew)),
        Some(Errno::EEXIST)
    );
    assert_eq!(
        errno_err(fs.open(&at("missing"), OpenMode::ReadWrite)),
        Some(Errno::ENOENT)
    );
    assert_eq!(
        errno_err(fs.open(&at("no/f"), OpenMode::CreateNew)),
        Some(Errno::ENOENT)
    );
    f.write_all_at(b"hello", 5000).unwrap();
    assert_eq!(f.size().unwrap(), 5005);
    let mut b = [1u8; 10];
    assert_eq!(f.read_at(&mut b, 4998).unwrap(), 7);
    assert_eq!(&b[..7], b"\0\0hello");
    assert_eq!(f.read_at(&mut b, 5005).unwrap(), 0);
    f.set_len(5002).unwrap();
    f.set_len(5010).unwrap();
    f.read_exact_at(&mut b, 5000).unwrap();
    assert_eq!(&b, b"he\0\0\0\0\0\0\0\0");
    f.fdatasync().unwrap();
    f.fsync().unwrap();
    assert!(f.fallocate(8192).unwrap());
    assert_eq!(f.size().unwrap(), 8192);
    let ro = fs.open(&at("f"), OpenMode::Read).unwrap();
    assert_eq!(errno_err(ro.write_at(b"x", 0)), Some(Errno::EBADF));
    fs.create_dir(&at("d")).unwrap();
    assert_eq!(e(fs.create_dir(&at("d"))), Some(Errno::EEXIST));
    assert_eq!(
        errno_err(fs.open(&at("d"), OpenMode::ReadWrite)),
        Some(Errno::EISDIR)
    );
    assert_eq!(
        errno_err(fs.open(&at("f/x"), OpenMode::CreateNew)),
        Some(Errno::ENOTDIR)
    );
    fs.hard_link(&at("f"), &at("d/l")).unwrap();
    assert_eq!(e(fs.hard_link(&at("f"), &at("d/l"))), Some(Errno::EEXIST));
    create_synced(fs, &at("g").to_string_lossy(), b"g");
    assert_eq!(
        e(fs.rename_noreplace(&at("g"), &at("f"))),
        Some(Errno::EEXIST)
    );
    assert_eq!(e(fs.rename(&at("g"), &at("d"))), Some(Errno::EISDIR));
    assert_eq!(e(fs.rename(&at("d"), &at("g"))), Some(Errno::ENOTDIR));
    assert_eq!(e(fs.rename(&at("d"), &at("d/sub"))), Some(Errno::EINVAL));
    fs.rename(&at("g"), &at("f")).unwrap();
    assert_eq!(read(fs, &at("f").to_string_lossy()).unwrap(), b"g");
    assert_eq!(read(fs, &at("d/l").to_string_lossy()).unwrap().len(), 8192);
    fs.rename(&at("f"), &at("f")).unwrap();
    let t = fs.open(&at("d/l"), OpenMode::CreateTruncate).unwrap();
    assert_eq!(t.size().unwrap(), 0);
    assert_eq!(e(fs.unlink(&at("d"))), Some(Errno::EISDIR));
    assert_eq!(e(fs.unlink(&at("nope"))), Some(Errno::ENOENT));
    fs.unlink(&at("d/l")).unwrap();
    // an unlinked file stays readable through its handle (truncated by its
    // other name)
    assert_eq!(ro.size().unwrap(), 0);
    fs.fsync_dir(root).unwrap();
    assert_eq!(e(fs.fsync_dir(&at("nope"))), Some(Errno::ENOENT));
    let mut names = fs.read_dir(root).unwrap();
    names.sort();
    assert_eq!(names, vec![OsString::from("d"), OsString::from("f")]);
    assert!(fs.read_dir(&at("d")).unwrap().is_empty());
    let st = fs.stat(&at("f")).unwrap();
    assert!(!st.is_dir && st.len == 1 && st.modified.is_some(), "{st:?}");
    assert!(fs.stat(&at("d")).unwrap().is_dir);
    assert_eq!(errno_err(fs.stat(&at("nope"))), Some(Errno::ENOENT));
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    let g = fs.open(&at("f"), OpenMode::ReadWrite).unwrap();
    g.set_times(old, None).unwrap();
    assert_eq!(fs.stat(&at("f")).unwrap().modified, Some(old));
    let space = fs.statvfs(root).unwrap();
    assert!(space.total_bytes > 0 && space.free_bytes <= space.total_bytes);
}

#[test]
fn behaves_like_the_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&*real(), dir.path());
    let (_sim, fs) = disk(SimOptions::default());
    conformance(&*fs, p("/d"));
}

#[test]
fn synced_data_always_survives_unsynced_data_may_or_may_not() {
    let synced: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8 + 1).collect();
    let (mut appended_all, mut appended_none, mut named, mut unnamed) = (0, 0, 0, 0);
    for seed in 0..300 {
        let (sim, fs) = disk(SimOptions::default());
        let f = fs.open(p("/d/a"), OpenMode::CreateNew).unwrap();
        f.write_all_at(&synced, 0).unwrap();
        f.fdatasync().unwrap();
        fs.fsync_dir(p("/d")).unwrap();
        f.write_all_at(&[7u8; 9000], 10_000).unwrap();
        create_synced(&*fs, "/d/b", b"data synced, name not");
        drop(f);
        sim.crash(seed);
        let a = read(&*fs, "/d/a").expect("a synced name survives");
        assert!(a.len() >= 10_000, "seed {seed}");
        assert!(a[..10_000] == synced[..], "seed {seed}");
        match a.len() {
            19_000 if a[10_000..].iter().all(|b| *b == 7) => appended_all += 1,
            10_000 => appended_none += 1,
            _ => {}
        }
        match read(&*fs, "/d/b") {
            Some(b) => {
                assert_eq!(b, b"data synced, name not", "seed {seed}");
                named += 1;
            }
            None => unnamed += 1,
        }
    }
    assert!(appended_all > 0 && appended_none > 0);
    assert!(named > 0 && unnamed > 0);
}

#[test]
fn directory_entries_are_durable_only_after_fsync_of_the_directory() {
    let (mut back, mut gone) = (0, 0);
    for seed in 0..100 {
        for sync_dir in [false, true] {
            let (sim, fs) = disk(SimOptions::default());
            create_synced(&*fs, "/d/x", b"x");
            create_synced(&*fs, "/d/y", b"y");
            fs.fsync_dir(p("/d")).unwrap();
            fs.unlink(p("/d/x")).unwrap();
            fs.create_dir(p("/d/sub")).unwrap();
            if sync_dir {
                fs.fsync_dir(p("/d")).unwrap();
            }
            assert_eq!(sim.unsynced().1, if sync_dir { 0 } else { 2 });
            sim.crash(seed);
            let x = read(&*fs, "/d/x");
            let sub = fs.read_dir(p("/d/sub")).is_ok();
            if sync_dir {
                assert_eq!((x, sub), (None, true), "seed {seed}");
            } else if x.is_some() {
                back += 1;
            } else {
                gone += 1;
            }
            assert_eq!(read(&*fs, "/d/y").unwrap(), b"y");
        }
    }
    assert!(back > 0 && gone > 0);
}

#[test]
fn a_rename_happened_or_did_not() {
    let mut seen = BTreeSet::new();
    for seed in 0..200 {
        let (sim, fs) = disk(SimOptions::default());
        create_synced(&*fs, "/d/b", b"old");
        fs.create_dir(p("/d/e")).unwrap();
        create_synced(&*fs, "/d/m", b"moved");
        fs.fsync_dir(p("/d")).unwrap();
        create_synced(&*fs, "/d/tmp", b"new");
        fs.rename(p("/d/tmp"), p("/d/b")).unwrap();
        fs.rename_noreplace(p("/d/m"), p("/d/e/m")).unwrap();
        sim.crash(seed);
        let b = read(&*fs, "/d/b");
        let tmp = read(&*fs, "/d/tmp");
        match (b.as_deref(), tmp.as_deref()) {
            (Some(b"new"), None) => seen.insert("replaced"),
            (Some(b"old"), Some(b"new")) => seen.insert("not replaced"),
            (Some(b"old"), None) => seen.insert("tmp never named"),
            other => panic!("seed {seed}: {other:?}"),
        };
        match (read(&*fs, "/d/m"), read(&*fs, "/d/e/m")) {
            (Some(m), None) | (None, Some(m)) => assert_eq!(m, b"moved"),
            other => panic!("seed {seed}: moved file in both or neither: {other:?}"),
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[test]
fn fsync_of_either_directory_makes_a_rename_between_them_durable_whole() {
    for seed in 0..50 {
        for synced in ["/d/e1", "/d/e2"] {
            let (sim, fs) = disk(SimOptions::default());
            fs.create_dir(p("/d/e1")).unwrap();
            fs.create_dir(p("/d/e2")).unwrap();
            fs.fsync_dir(p("/d")).unwrap();
            create_synced(&*fs, "/d/e1/f", b"f");
            fs.fsync_dir(p("/d/e1")).unwrap();
            fs.rename(p("/d/e1/f"), p("/d/e2/g")).unwrap();
            fs.fsync_dir(p(synced)).unwrap();
            sim.crash(seed);
            assert_eq!(read(&*fs, "/d/e1/f"), None, "seed {seed}");
            assert_eq!(read(&*fs, "/d/e2/g").unwrap(), b"f", "seed {seed}");
        }
    }
}

#[test]
fn fsync_dir_takes_the_operations_it_depends_on_and_nothing_survives_without_them() {
    let (mut with_sub, mut without_sub, mut both_names) = (0, 0, 0);
    for seed in 0..200 {
        let (sim, fs) = disk(SimOptions::default());
        // created then renamed: the fsync makes the create durable too
        create_synced(&*fs, "/d/a", b"a");
        fs.rename(p("/d/a"), p("/d/b")).unwrap();
        // a hard link then the unlink of the old name: never neither name
        create_synced(&*fs, "/d/x", b"x");
        fs.fsync_dir(p("/d")).unwrap();
        fs.rename(p("/d/b"), p("/d/c")).unwrap();
        fs.fsync_dir(p("/d")).unwrap();
        fs.create_dir(p("/d/sub2")).unwrap();
        fs.fsync_dir(p("/d")).unwrap();
        fs.hard_link(p("/d/x"), p("/d/sub2/x")).unwrap();
        fs.unlink(p("/d/x")).unwrap();
        // a file in a directory whose own name is not durable
        fs.create_dir(p("/d/sub")).unwrap();
        create_synced(&*fs, "/d/sub/f", b"f");
        fs.fsync_dir(p("/d/sub")).unwrap();
        sim.crash(seed);
        assert_eq!(read(&*fs, "/d/c").unwrap(), b"a", "seed {seed}");
        assert_eq!(read(&*fs, "/d/a"), None);
        assert_eq!(read(&*fs, "/d/b"), None);
        match read(&*fs, "/d/sub/f") {
            Some(f) => {
                assert_eq!(f, b"f");
                with_sub += 1;
            }
            None => {
                assert!(fs.read_dir(p("/d/sub")).is_err(), "seed {seed}");
                without_sub += 1;
            }
        }
        let names = (read(&*fs, "/d/x"), read(&*fs, "/d/sub2/x"));
        assert!(
            names.0.is_some() || names.1.is_some(),
            "seed {seed}: a link and an unlink lost the file"
        );
        if names.0.is_some() && names.1.is_some() {
            both_names += 1;
        }
    }
    assert!(
        with_sub > 0 && without_sub > 0 && both_names > 0,
        "{with_sub} {without_sub} {both_names}"
    );
}

/// A workload with some of everything unsynced.
fn workload(sim: &SimFs) {
    let fs = sim.handle();
    let f = fs.open(p("/d/log"), OpenMode::CreateNew).unwrap();
    assert!(f.fallocate(16 * PAGE as u64).unwrap());
    f.fsync().unwrap();
    fs.fsync_dir(p("/d")).unwrap();
    for i in 0..12u8 {
        f.write_all_at(&[i + 1; 3000], u64::from(i) * 3000).unwrap();
        if i == 4 {
            f.fdatasync().unwrap();
        }
    }
    create_synced(&*fs, "/d/snap.tmp", &[9u8; 5000]);
    fs.rename(p("/d/snap.tmp"), p("/d/snap")).unwrap();
    fs.create_dir(p("/d/archive")).unwrap();
    create_synced(&*fs, "/d/archive/s1", b"s1");
}

#[test]
fn a_crash_replays_from_its_seed() {
    let mut distinct = BTreeSet::new();
    for seed in 0..60 {
        let (a, _) = disk(SimOptions::default());
        let (b, _) = disk(SimOptions::default());
        workload(&a);
        workload(&b);
        let (ra, rb) = (a.crash(seed), b.crash(seed));
        assert_eq!(ra, rb);
        assert_eq!(a.tree(), b.tree(), "seed {seed}");
        distinct.insert(format!("{:?}", a.tree()));
    }
    assert!(distinct.len() > 30, "{} distinct outcomes", distinct.len());
}

#[test]
fn every_kind_of_outcome_happens_over_many_seeds() {
    const PAGES: usize = 8;
    let mut kinds: BTreeMap<&str, u32> = BTreeMap::new();
    let mut total = CrashReport::default();
    for seed in 0..600 {
        let (sim, fs) = disk(SimOptions::default());
        let f = fs.open(p("/d/f"), OpenMode::CreateNew).unwrap();
        for i in 0..PAGES {
            f.write_all_at(&[0x10 + i as u8; PAGE], (i * PAGE) as u64)
                .unwrap();
        }
        f.fdatasync().unwrap();
        fs.fsync_dir(p("/d")).unwrap();
        for i in 0..PAGES {
            f.write_all_at(&[0x80 + i as u8; PAGE], (i * PAGE) as u64)
                .unwrap();
        }
        // an unsynced append of three sizes
        for k in 0..3 {
            f.write_all_at(&[0xee; 1000], (PAGES * PAGE + k * 1000) as u64)
                .unwrap();
        }
        assert_eq!(sim.unsynced(), (PAGES as u64 + 1, 0));
        drop(f);
        let r = sim.crash(seed);
        assert_eq!(
            r.pages_kept + r.pages_old + r.pages_zeroed + r.pages_torn,
            PAGES as u64 + 1
        );
        total.pages_kept += r.pages_kept;
        total.pages_old += r.pages_old;
        total.pages_zeroed += r.pages_zeroed;
        total.pages_torn += r.pages_torn;
        let data = read(&*fs, "/d/f").unwrap();
        let mut kept = [false; PAGES];
        for (i, page) in data[..PAGES * PAGE].chunks(PAGE).enumerate() {
            let (old, new) = (0x10 + i as u8, 0x80 + i as u8);
            let kind = if page.iter().all(|b| *b == new) {
                kept[i] = true;
                "page kept"
            } else if page.iter().all(|b| *b == old) {
                "page old"
            } else if page.iter().all(|b| *b == 0) {
                "page zeroed"
            } else {
                let cut = page.iter().position(|b| *b != new).unwrap();
                assert!(
                    cut % 512 == 0 && page[cut..].iter().all(|b| *b == old),
                    "seed {seed}: page {i} is neither new, old, zeros nor torn at a sector"
                );
                "page torn"
            };
            *kinds.entry(kind).or_default() += 1;
        }
        let n = kept.iter().filter(|k| **k).count();
        let first_lost = kept.iter().position(|k| !k).unwrap_or(PAGES);
        let kind = if n == PAGES {
            "all kept"
        } else if n == 0 {
            "none kept"
        } else if first_lost == n {
            "a prefix"
        } else if !kept[0] {
            "later pages without earlier"
        } else {
            "a gap"
        };
        *kinds.entry(kind).or_default() += 1;
        let size = match data.len() - PAGES * PAGE {
            0 => "size old",
            1000 | 2000 => "size intermediate",
            3000 => "size new",
            other => panic!("seed {seed}: size {other}"),
        };
        *kinds.entry(size).or_default() += 1;
    }
    for kind in [
        "page kept",
        "page old",
        "page zeroed",
        "page torn",
        "all kept",
        "none kept",
        "a prefix",
        "later pages without earlier",
        "a gap",
        "size old",
        "size intermediate",
        "size new",
    ] {
        assert!(kinds.get(kind).is_some_and(|n| *n > 0), "{kind}: {kinds:?}");
    }
    assert!(total.pages_kept > 0 && total.pages_torn > 0 && total.pages_zeroed > 0);
}

#[test]
fn work_goes_on_after_a_crash_and_old_handles_fail() {
    let (sim, fs) = disk(SimOptions::default());
    let f = fs.open(p("/d/f"), OpenMode::CreateNew).unwrap();
    f.write_all_at(b"one", 0).unwrap();
    f.fsync().unwrap();
    fs.fsync_dir(p("/d")).unwrap();
    sim.crash(1);
    assert_eq!(errno_err(f.write_at(b"x", 0)), Some(Errno::EIO));
    assert_eq!(errno_err(f.fdatasync()), Some(Errno::EIO));
    assert_eq!(errno_err(f.size()), Some(Errno::EIO));
    drop(f);
    let f = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
    f.write_all_at(b"two", 3).unwrap();
    f.fdatasync().unwrap();
    sim.crash(2);
    assert_eq!(read(&*fs, "/d/f").unwrap(), b"onetwo");
    assert_eq!(sim.unsynced(), (0, 0));
    sim.sync_all();
    let mut tree = sim.tree();
    assert_eq!(tree.remove(p("/d")), Some(None));
    assert_eq!(tree.remove(p("/d/f")), Some(Some(b"onetwo".to_vec())));
    assert!(tree.is_empty());
}

#[test]
fn a_shrink_is_lost_or_kept_with_the_size() {
    let mut seen = BTreeSet::new();
    for seed in 0..100 {
        let (sim, fs) = disk(SimOptions::default());
        let f = fs.open(p("/d/f"), OpenMode::CreateNew).unwrap();
        f.write_all_at(&[5u8; 3 * PAGE], 0).unwrap();
        f.fsync().unwrap();
        fs.fsync_dir(p("/d")).unwrap();
        f.set_len(100).unwrap();
        drop(f);
        sim.crash(seed);
        let data = read(&*fs, "/d/f").unwrap();
        assert!(data[..100].iter().all(|b| *b == 5), "seed {seed}");
        seen.insert(data.len());
        assert!(data.len() == 100 || data.len() == 3 * PAGE, "seed {seed}");
    }
    assert_eq!(seen.len(), 2);
}

#[test]
fn injected_failures_change_nothing_but_a_failed_fsync_may_lose_data() {
    let (sim, fs) = disk(SimOptions::default());
    let f = fs.open(p("/d/f"), OpenMode::CreateNew).unwrap();
    sim.inject(Op::Write, Fault::Errno(libc::ENOSPC));
    assert_eq!(errno_err(f.write_at(b"abc", 0)), Some(Errno::ENOSPC));
    assert_eq!(f.size().unwrap(), 0);
    sim.inject(Op::Write, Fault::ShortWrite);
    assert_eq!(f.write_at(b"abcdef", 0).unwrap(), 3);
    sim.add_rule(Rule {
        op: Op::Rename,
        name_suffix: Some("g".into()),
        skip: 0,
        times: 1,
        fault: Fault::Errno(libc::EXDEV),
    });
    assert_eq!(
        errno_err(fs.rename(p("/d/f"), p("/d/g"))),
        Some(Errno::EXDEV)
    );
    assert!(read(&*fs, "/d/f").is_some() && read(&*fs, "/d/g").is_none());
    sim.inject(Op::FsyncDir, Fault::Errno(libc::EIO));
    assert_eq!(errno_err(fs.fsync_dir(p("/d"))), Some(Errno::EIO));
    assert_eq!(sim.unsynced().1, 1, "the create is still pending");
    for op in [
        Op::Unlink,
        Op::HardLink,
        Op::CreateDir,
        Op::Statvfs,
        Op::ReadDir,
    ] {
        sim.inject(op, Fault::Errno(libc::EIO));
    }
    assert_eq!(errno_err(fs.unlink(p("/d/f"))), Some(Errno::EIO));
    assert_eq!(
        errno_err(fs.hard_link(p("/d/f"), p("/d/h"))),
        Some(Errno::EIO)
    );
    assert_eq!(errno_err(fs.create_dir(p("/d/s"))), Some(Errno::EIO));
    assert_eq!(errno_err(fs.statvfs(p("/d"))), Some(Errno::EIO));
    assert_eq!(errno_err(fs.read_dir(p("/d"))), Some(Errno::EIO));
    assert_eq!(sim.pending_rules(), 0);
    assert_eq!(fs.read_dir(p("/d")).unwrap(), vec![OsString::from("f")]);
    sim.inject(Op::Fsync, Fault::Errno(libc::EIO));
    sim.clear_rules();
    f.fsync().unwrap();

    // fsyncgate: after a failed fdatasync the next one succeeds, reads see
    // the new data, and yet a crash may show it lost.
    let (mut lost, mut kept) = (0, 0);
    for seed in 0..100 {
        let (sim, fs) = disk(SimOptions {
            seed,
            ..SimOptions::default()
        });
        let f = fs.open(p("/d/f"), OpenMode::CreateNew).unwrap();
        f.write_all_at(&[1u8; 2 * PAGE], 0).unwrap();
        f.fdatasync().unwrap();
        fs.fsync_dir(p("/d")).unwrap();
        f.write_all_at(&[2u8; 2 * PAGE], 0).unwrap();
        sim.inject(Op::Fdatasync, Fault::Errno(libc::EIO));
        assert_eq!(errno_err(f.fdatasync()), Some(Errno::EIO));
        f.fdatasync().unwrap();
        assert_eq!(read(&*fs, "/d/f").unwrap(), vec![2u8; 2 * PAGE]);
        assert_eq!(sim.unsynced(), (0, 0));
        drop(f);
        sim.crash(seed);
        if read(&*fs, "/d/f").unwrap() == vec![2u8; 2 * PAGE] {
            kept += 1;
        } else {
            lost += 1;
        }
    }
    assert!(lost > 0 && kept > 0);
}

#[test]
fn the_disk_fills_up_and_frees_space() {
    let (sim, fs) = disk(SimOptions {
        capacity_bytes: 16 * PAGE as u64,
        ..SimOptions::default()
    });
    let f = fs.open(p("/d/f"), OpenMode::CreateNew).unwrap();
    f.write_all_at(&[1u8; 16 * PAGE], 0).unwrap();
    assert_eq!(fs.statvfs(p("/")).unwrap().free_bytes, 0);
    assert_eq!(
        errno_err(f.write_at(b"x", 16 * PAGE as u64)),
        Some(Errno::ENOSPC)
    );
    f.write_all_at(b"overwrite needs no new page", 0).unwrap();
    let g = fs.open(p("/d/g"), OpenMode::CreateNew).unwrap();
    assert_eq!(errno_err(g.fallocate(PAGE as u64)), Some(Errno::ENOSPC));
    fs.unlink(p("/d/f")).unwrap();
    assert_eq!(fs.statvfs(p("/")).unwrap().free_bytes, 0, "still open");
    drop(f);
    assert_eq!(fs.statvfs(p("/")).unwrap().free_bytes, 16 * PAGE as u64);
    assert!(g.fallocate(PAGE as u64).unwrap());
    drop(g);
    sim.sync_all();

    let (_sim, fs) = disk(SimOptions {
        fallocate: false,
        ..SimOptions::default()
    });
    let f = fs.open(p("/d/f"), OpenMode::CreateNew).unwrap();
    assert!(!f.fallocate(PAGE as u64).unwrap());
    assert_eq!(f.size().unwrap(), 0);
}

#[test]
fn times_are_durable_after_fsync_not_fdatasync() {
    let t = |s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
    let (sim, fs) = disk(SimOptions::default());
    sim.set_clock(Some(t(100)));
    let f = fs.open(p("/d/f"), OpenMode::CreateNew).unwrap();
    fs.fsync_dir(p("/d")).unwrap();
    sim.set_clock(Some(t(200)));
    f.write_all_at(b"x", 0).unwrap();
    assert_eq!(fs.stat(p("/d/f")).unwrap().modified, Some(t(200)));
    f.fdatasync().unwrap();
    drop(f);
    sim.crash(0);
    let st = fs.stat(p("/d/f")).unwrap();
    assert_eq!((st.len, st.modified), (1, Some(t(100))));
    let f = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
    f.set_times(t(300), None).unwrap();
    f.fsync().unwrap();
    drop(f);
    sim.crash(1);
    assert_eq!(fs.stat(p("/d/f")).unwrap().modified, Some(t(300)));
}
