//! Replays every committed fuzz input through the same checks the fuzz targets make: the seeds
//! (fuzz/corpus/<target>/) and the inputs that once found a bug (fuzz/regressions/<target>/).
//! `make fuzz` grows the corpus with cargo-fuzz on nightly; this test needs neither.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::Path;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

fn replay(kind: &str, name: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(name);
    let files = files(&dir);
    for f in &files {
        let data = std::fs::read(f).unwrap();
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("fuzz target {name} fails on {}", f.display());
        }
    }
    files.len()
}

#[test]
fn every_fuzz_target_passes_its_seeds() {
    for (name, run) in targets::TARGETS {
        let n = replay("corpus", name, *run);
        assert!(n > 0, "no seeds in fuzz/corpus/{name}: the target would run on nothing");
    }
}

#[test]
fn every_fuzz_finding_stays_fixed() {
    for (name, run) in targets::TARGETS {
        replay("regressions", name, *run);
    }
}

#[test]
fn every_cargo_fuzz_target_is_replayed_here() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let mut on_disk: Vec<String> =
        files(&dir).iter().map(|f| f.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    let mut here: Vec<String> = targets::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    on_disk.sort();
    here.sort();
    assert_eq!(on_disk, here, "fuzz/fuzz_targets and targets::TARGETS list different targets");
}

#[test]
fn the_dpop_seeds_reach_acceptance_and_refusal() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/dpop_proof");
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    assert!(targets::dpop_proof_accepted(&read("valid")));
    assert!(!targets::dpop_proof_accepted(&read("other-method")));
    assert!(!targets::dpop_proof_accepted(&read("private-jwk")));
}
