//! The disk spool: while SQS is unreachable, results that could not be sent
//! go to files under `<spool-dir>/<agent-id>/`, bounded by bytes, and are
//! sent from there (oldest first) once SQS is back, also after a restart. A
//! file is written whole then renamed, so a crash never leaves half a file;
//! a corrupt line or file is skipped and counted, never fatal.

use crate::buffer::{RawResult, decode};
use serde_json::value::RawValue;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One agent's spool directory.
#[derive(Clone, Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
}

/// What was read back from one spool file.
#[derive(Debug)]
pub struct Spooled {
    /// The file, to remove once its results are delivered.
    pub path: PathBuf,
    /// The lines that are results, each as its JSON.
    pub results: Vec<RawResult>,
    /// Lines that did not parse (skipped).
    pub corrupt: u64,
}

impl Spool {
    /// The spool of `agent` under `root`, holding at most `max_bytes`.
    pub fn open(root: &Path, agent: &str, max_bytes: u64) -> std::io::Result<Spool> {
        let dir = root.join(agent);
        std::fs::create_dir_all(&dir)?;
        // Leftovers of a write that crashed before its rename.
        for f in files(&dir, "tmp")? {
            let _ = std::fs::remove_file(f);
        }
        Ok(Spool { dir, max_bytes })
    }

    /// Writes `results` as a new file, a line each (their JSON is compact);
    /// returns how many older results were dropped to keep the spool under
    /// its byte bound.
    pub fn spill(&self, results: &[RawResult]) -> std::io::Result<u64> {
        if results.is_empty() {
            return Ok(0);
        }
        let next = files(&self.dir, "jsonl")?
            .last()
            .and_then(|p| seq(p))
            .map_or(0, |s| s + 1);
        let name = self.dir.join(format!("{next:020}.jsonl"));
        let tmp = name.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        for r in results {
            file.write_all(r.get().as_bytes())?;
            file.write_all(b"\n")?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, &name)?;
        self.trim()
    }

    /// Deletes the oldest files until the spool fits its bound; returns the results dropped.
    fn trim(&self) -> std::io::Result<u64> {
        let mut all: Vec<(PathBuf, u64)> = files(&self.dir, "jsonl")?
            .into_iter()
            .map(|p| {
                let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                (p, len)
            })
            .collect();
        let mut total: u64 = all.iter().map(|(_, l)| l).sum();
        let mut dropped = 0;
        while total > self.max_bytes && all.len() > 1 {
            let (oldest, len) = all.remove(0);
            dropped += std::fs::read_to_string(&oldest)
                .map(|t| t.lines().count() as u64)
                .unwrap_or(0);
            std::fs::remove_file(&oldest)?;
            total -= len;
        }
        Ok(dropped)
    }

    /// The oldest file's results, or `None` when the spool is empty. A file
    /// that cannot be read at all is removed and its size counted as corrupt.
    pub fn oldest(&self) -> std::io::Result<Option<Spooled>> {
        for path in files(&self.dir, "jsonl")? {
            let text = match std::fs::read(&path) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(_) => {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
            };
            let mut results = Vec::new();
            let mut corrupt = 0;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let raw = RawValue::from_string(line.to_owned()).ok();
                match raw.filter(|r| decode(r).is_some()) {
                    Some(r) => results.push(r),
                    None => corrupt += 1,
                }
            }
            return Ok(Some(Spooled {
                path,
                results,
                corrupt,
            }));
        }
        Ok(None)
    }

    /// Removes a delivered file.
    pub fn remove(&self, spooled: &Spooled) -> std::io::Result<()> {
        std::fs::remove_file(&spooled.path)
    }

    /// True when nothing is spooled.
    pub fn is_empty(&self) -> bool {
        files(&self.dir, "jsonl")
            .map(|f| f.is_empty())
            .unwrap_or(true)
    }
}

fn seq(p: &Path) -> Option<u64> {
    p.file_stem()?.to_str()?.parse().ok()
}

/// The spool's files with this extension, oldest (lowest sequence) first.
fn files(dir: &Path, ext: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext) && (ext != "jsonl" || seq(p).is_some()))
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::wire::{ProbeResult, Timestamp};

    fn result(n: i64) -> RawResult {
        let mut r = ProbeResult::new(
            "c",
            "h",
            "a",
            Timestamp::from_unix_ms(1_780_000_000_000 + n).unwrap(),
            1,
            1,
        );
        r.set_message("line one\nline two \u{0}");
        crate::buffer::encode(&r).unwrap()
    }

    fn at(r: &RawResult) -> i64 {
        decode(r).unwrap().scheduled_at.unix_ms()
    }

    fn root(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("statuspage-spool-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn results_come_back_oldest_file_first_and_survive_reopening() {
        let r = root("order");
        let spool = Spool::open(&r, "agent-a", 1 << 20).unwrap();
        spool.spill(&[result(1), result(2)]).unwrap();
        spool.spill(&[result(3)]).unwrap();
        let again = Spool::open(&r, "agent-a", 1 << 20).unwrap();
        let first = again.oldest().unwrap().unwrap();
        assert_eq!(
            first.results.iter().map(|x| at(x) % 10).collect::<Vec<_>>(),
            [1, 2]
        );
        again.remove(&first).unwrap();
        let last = again.oldest().unwrap().unwrap();
        assert_eq!(last.results.len(), 1);
        // A message with a line break and a NUL is still one line, and whole.
        assert_eq!(decode(&last.results[0]), decode(&result(3)));
        std::fs::remove_dir_all(r).unwrap();
    }

    #[test]
    fn corrupt_lines_and_leftover_temp_files_are_skipped() {
        let r = root("corrupt");
        let spool = Spool::open(&r, "a", 1 << 20).unwrap();
        spool.spill(&[result(1)]).unwrap();
        let path = spool.oldest().unwrap().unwrap().path;
        let mut text = std::fs::read_to_string(&path).unwrap();
        // Not JSON, not text, and JSON that is not a result: results stay
        // JSON until delivered, so a line is decoded here, or it would go
        // out inside a message and spoil the message's other results.
        text.push_str("{not json\n\u{0}\u{1}garbage\n{\"check\": \"web\"}\n[1, 2]\n");
        std::fs::write(&path, text).unwrap();
        std::fs::write(r.join("a").join("00000000000000000009.tmp"), "half a write").unwrap();
        let reopened = Spool::open(&r, "a", 1 << 20).unwrap();
        let got = reopened.oldest().unwrap().unwrap();
        assert_eq!((got.results.len(), got.corrupt), (1, 4));
        assert_eq!(decode(&got.results[0]), decode(&result(1)));
        assert!(!r.join("a").join("00000000000000000009.tmp").exists());
        std::fs::remove_dir_all(r).unwrap();
    }

    #[test]
    fn the_byte_bound_drops_the_oldest_files() {
        let r = root("bound");
        let one = result(0).get().len() as u64 + 1;
        let spool = Spool::open(&r, "a", one * 5).unwrap();
        let mut dropped = 0;
        for n in 0..4 {
            dropped += spool.spill(&[result(n * 2), result(n * 2 + 1)]).unwrap();
        }
        assert_eq!(dropped, 4, "two files of two results went");
        let first = spool.oldest().unwrap().unwrap();
        assert_eq!(at(&first.results[0]) % 10, 4);
        std::fs::remove_dir_all(r).unwrap();
    }
}
