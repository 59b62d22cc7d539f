//! MassGen's shipped example configs kept under `tests/fixtures/massgen/`, shared by the test
//! binaries that read them (included with `#[path]`).

use std::path::{Path, PathBuf};

/// Where the corpus lives.
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/massgen")
}

/// Every `.yaml` file under `dir`, depth first, appended to `out`.
pub fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}
