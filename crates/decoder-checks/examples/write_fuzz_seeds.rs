//! Writes the valid encodings of `ringkv_decoder_checks::seeds` into
//! `<dir>/<target>/seed-<n>` (default dir: `fuzz/corpus`), so fuzzing
//! starts past the format bytes:
//! `cargo run -p ringkv-decoder-checks --example write_fuzz_seeds`.

use ringkv_decoder_checks::seeds::{seeds, TARGETS};
use std::fs;
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or("fuzz/corpus".into()));
    for target in TARGETS {
        let dir = dir.join(target);
        fs::create_dir_all(&dir)?;
        for (i, seed) in seeds(target).iter().enumerate() {
            fs::write(dir.join(format!("seed-{i}")), seed)?;
        }
    }
    Ok(())
}
