//! Mutation fuzzing of the readers: ≥ 10,000 mutated IDX, TOML and checkpoint byte strings
//! each, from a fixed seed; each must give an `Err` or a valid value — never a panic.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vaegan::checkpoint::Checkpoint;
use vaegan::data::idx;
use vaegan::model::RunConfig;

const CASES: usize = 10_000;

/// One to four random edits: bit flips, interesting bytes, truncation, insertion,
/// duplication of a chunk, deletion.
fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let n = b.len().max(1);
        match rng.random_range(0..6) {
            0 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] = [0x00, 0xff, 0x7f, 0x80, 0x08, 0x01, b'"', b'=', b'['][rng.random_range(0..9)];
            }
            2 => b.truncate(rng.random_range(0..n)),
            3 => {
                let i = rng.random_range(0..=b.len());
                let extra: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                b.splice(i..i, extra);
            }
            4 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                let j = (i + rng.random_range(1..64)).min(b.len());
                let chunk = b[i..j].to_vec();
                let at = rng.random_range(0..=b.len());
                b.splice(at..at, chunk);
            }
            _ if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                let j = (i + rng.random_range(1..32)).min(b.len());
                b.drain(i..j);
            }
            _ => {}
        }
    }
    b
}

#[test]
fn mutated_idx_files_never_panic() {
    let mut rng = StdRng::seed_from_u64(1);
    let raw = crate::data::idx_bytes(&[3, 4, 5], &(0..60).collect::<Vec<u8>>());
    let seeds = [raw.clone(), crate::data::gz(&raw), crate::data::idx_bytes(&[7], &[1; 7])];
    let mut ok = 0;
    for i in 0..CASES {
        let bytes = mutate(&mut rng, &seeds[i % seeds.len()]);
        if let Ok(v) = idx::from_bytes(&bytes, Path::new("fuzz.idx")) {
            assert_eq!(v.data.len(), v.dims.iter().product::<usize>(), "an accepted file must be consistent");
            ok += 1;
        }
    }
    assert!(ok < CASES, "some mutations must be refused");
}

#[test]
fn mutated_toml_configs_never_panic() {
    let mut rng = StdRng::seed_from_u64(2);
    let seed = vaegan::model::RunConfig::preset("mnist-mlp").unwrap().to_toml();
    let seeds = [seed.into_bytes(), crate::interrupt::TINY_TOML.as_bytes().to_vec()];
    for i in 0..CASES {
        let bytes = mutate(&mut rng, &seeds[i % seeds.len()]);
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(c) = RunConfig::from_toml(&text, "fuzz.toml") {
            c.validate().expect("an accepted config is valid");
        }
    }
}

#[test]
fn mutated_checkpoints_never_panic() {
    let mut rng = StdRng::seed_from_u64(3);
    let seed = crate::hostile::tiny_checkpoint().to_bytes().unwrap();
    let mut ok = 0;
    for _ in 0..CASES {
        let bytes = mutate(&mut rng, &seed);
        if let Ok(c) = Checkpoint::from_bytes(&bytes, Path::new("fuzz.safetensors")) {
            assert!(c.params.iter().all(|(_, _, v)| v.iter().all(|x| x.is_finite())));
            ok += 1;
        }
    }
    assert!(ok < CASES);
}

/// Labels files (`data::labels`): CelebA's format and CSV, mutated; an accepted table is
/// consistent (a row of 0/1 per listed file, unique names).
#[test]
fn mutated_labels_files_never_panic() {
    use vaegan::data::labels;
    let mut rng = StdRng::seed_from_u64(4);
    let celeba = b"3\nEyeglasses Male  Smiling\n000001.jpg -1  1  1\n000002.jpg  1 -1  1\n000003.jpg -1 -1 -1\n".to_vec();
    let csv =
        b"file,shape,colour,x,glasses\nshape_00000.png,circle,red,0.25,1\nshape_00001.png,square,\"blue\",0.5,0\nshape_00002.png,circle,green,1e3,1\n".to_vec();
    let mut ok = [0, 0];
    for i in 0..CASES {
        let as_csv = i % 2 == 1;
        let bytes = mutate(&mut rng, if as_csv { &csv } else { &celeba });
        let table = if as_csv {
            labels::parse_csv(Path::new("fuzz.csv"), &bytes)
        } else {
            match std::str::from_utf8(&bytes) {
                Ok(text) => labels::parse_celeba(Path::new("fuzz.txt"), text),
                Err(_) => continue,
            }
        };
        if let Ok(t) = table {
            assert_eq!(t.values.len(), t.files.len() * t.names.len());
            assert!(t.values.iter().all(|&v| v <= 1));
            let mut names = t.names.clone();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), t.names.len(), "unique names: {:?}", t.names);
            ok[as_csv as usize] += 1;
        }
    }
    assert!(ok.iter().all(|&n| n > 0 && n < CASES / 2), "some mutations accepted, some refused: {ok:?}");
}
