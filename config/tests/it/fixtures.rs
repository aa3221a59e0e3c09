//! Every file in `fixtures/invalid/` prints exactly its `.expected` lines.

use crate::{crate_dir, env_of};
use std::fs;

const SECRET: &str = "hunter2pass";

#[test]
fn every_invalid_fixture_prints_its_exact_expected_messages() {
    let base = crate_dir().join("tests/fixtures");
    let dir = base.join("invalid");
    let env = env_of(&[("SECRET_URL", "ftp://user:hunter2pass@example.com/")]);
    let mut cases: Vec<_> = fs::read_dir(&dir)
        .expect("fixtures/invalid exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_none_or(|e| e != "expected"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 25, "only {} invalid fixtures", cases.len());

    let mut failures = Vec::new();
    for case in &cases {
        let expected_path = case.with_extension("expected");
        let expected_path = if case.is_dir() {
            dir.join(format!(
                "{}.expected",
                case.file_name().unwrap().to_string_lossy()
            ))
        } else {
            expected_path
        };
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} has no {}", case.display(), expected_path.display()));
        let problems = match config::load(std::slice::from_ref(case), &env) {
            Ok(_) => {
                failures.push(format!("{}: loaded without any error", case.display()));
                continue;
            }
            Err(p) => p,
        };
        let prefix = format!("{}/", base.display());
        let actual: String = problems
            .iter()
            .map(|d| format!("{}\n", d.to_string().replace(&prefix, "")))
            .collect();
        assert!(!actual.contains(SECRET), "a secret leaked into: {actual}");
        if actual != expected {
            failures.push(format!(
                "{}\n--- expected\n{expected}--- actual\n{actual}",
                case.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_expected_file_has_its_fixture() {
    let dir = crate_dir().join("tests/fixtures/invalid");
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "expected") {
            let yaml = path.with_extension("yaml");
            let as_dir = path.with_extension("");
            assert!(
                yaml.exists() || as_dir.is_dir(),
                "{} has no fixture",
                path.display()
            );
        }
    }
}
