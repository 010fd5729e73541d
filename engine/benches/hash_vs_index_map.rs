//! Times the hash type against the plain `IndexMap` it replaced, in ns per
//! operation, for a large, a middling and a small hash (every packed form
//! and the table). A measurement, not a test:
//!
//! ```text
//! cargo bench -p tiered-engine --bench hash_vs_index_map
//! ```

use std::hint::black_box;
use std::time::Instant;

use indexmap::IndexMap;
use tiered_engine::db::Hash;

type Table = IndexMap<Vec<u8>, Vec<u8>>;

fn main() {
    fn time(what: &str, n: usize, mut f: impl FnMut()) {
        let t = Instant::now();
        f();
        println!(
            "{what:<44} {:>8.1} ns/op",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
    for (fields, rounds) in [(100_000usize, 3usize), (80, 20_000), (8, 200_000)] {
        let names: Vec<Vec<u8>> = (0..fields)
            .map(|i| format!("element:{i:06}").into_bytes())
            .collect();
        let n = fields * rounds;
        for _ in 0..2 {
            time(
                &format!("{fields} fields: IndexMap insert+overwrite"),
                n,
                || {
                    for _ in 0..rounds {
                        let mut m: Table = IndexMap::new();
                        for f in &names {
                            m.insert(f.clone(), b"xxxxxxxx".to_vec());
                        }
                        for f in &names {
                            m.insert(f.clone(), b"yyyyyyyy".to_vec());
                        }
                        black_box(&m);
                    }
                },
            );
            time(
                &format!("{fields} fields: Hash insert+overwrite"),
                n,
                || {
                    for _ in 0..rounds {
                        let mut h = Hash::new();
                        for f in &names {
                            h.insert(f.clone(), b"xxxxxxxx".to_vec());
                        }
                        for f in &names {
                            h.insert(f.clone(), b"yyyyyyyy".to_vec());
                        }
                        black_box(&h);
                    }
                },
            );
            let m: Table = names.iter().map(|f| (f.clone(), b"v".to_vec())).collect();
            let h: Hash = names.iter().map(|f| (f.clone(), b"v".to_vec())).collect();
            time(&format!("{fields} fields: IndexMap get"), n, || {
                for _ in 0..rounds {
                    for f in &names {
                        black_box(m.get(f.as_slice()));
                    }
                }
            });
            time(
                &format!("{fields} fields ({}): Hash get", h.encoding()),
                n,
                || {
                    for _ in 0..rounds {
                        for f in &names {
                            black_box(h.get(f));
                        }
                    }
                },
            );
        }
    }
}
