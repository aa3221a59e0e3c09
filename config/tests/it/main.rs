//! The config crate's contract, through its public API only.

mod fixtures;
mod loading;
mod reload;
mod schema;
mod wire;

use std::path::{Path, PathBuf};

/// `config/` — fixtures and examples are found from here. Read at run time
/// (cargo sets it for tests): a build directory shared by clones at other
/// paths may hold a test binary compiled elsewhere.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
}

/// An environment with only these variables.
pub fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// Loads one YAML text as if it were the file `checks.yaml`.
#[track_caller]
pub fn load_text(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<config::Catalog, config::Diagnostics> {
    config::load_str(
        &[(Path::new("checks.yaml").to_path_buf(), text.to_string())],
        env,
    )
}
