//! Reloading with [`config::Kept`]: a file that did not change is not
//! parsed again, and a reload gives exactly what a fresh load gives.

use crate::env_of;
use config::{Catalog, Kept, Sections};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A directory of its own under the system's temporary directory, removed
/// when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("statuspage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A file of one group with `n` HTTP checks, each `interval` apart.
fn checks(group: &str, n: usize, interval: &str) -> String {
    let mut text = format!("groups:\n  - name: {group}\n    checks:\n");
    for i in 0..n {
        text.push_str(&format!(
            "      - name: Check {i}\n        interval: {interval}\n        http: {{ url: 'http://127.0.0.1/{group}/{i}' }}\n"
        ));
    }
    text
}

fn check<'a>(catalog: &'a Catalog, id: &str) -> &'a Arc<config::Check> {
    catalog
        .checks
        .iter()
        .find(|c| c.id.as_str() == id)
        .unwrap_or_else(|| panic!("no check {id}"))
}

/// What a catalog says, without where it is in memory: ids, groups, config
/// hashes and maintenance, in order.
fn summary(catalog: &Catalog) -> Vec<String> {
    let mut out: Vec<String> = catalog
        .checks
        .iter()
        .map(|c| format!("{} {}", c.id, c.config_hash))
        .collect();
    out.extend(
        catalog
            .groups
            .iter()
            .map(|g| format!("group {} {:?} {:?}", g.name, g.description, g.checks)),
    );
    out.extend(
        catalog
            .maintenance
            .iter()
            .map(|m| format!("window {} {:?}", m.name, m.checks)),
    );
    out
}

fn reload(dir: &Path, env: &dyn Fn(&str) -> Option<String>, kept: &mut Kept) -> Catalog {
    config::load_reusing(&[dir.to_path_buf()], env, Sections::Checks, kept)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_reload_shares_the_checks_of_files_that_did_not_change() {
    let dir = Dir::new("reload-shares");
    let env = env_of(&[]);
    dir.write("a.yaml", &checks("Alpha", 3, "60s"));
    dir.write("b.yaml", &checks("Beta", 3, "60s"));
    let mut kept = Kept::default();
    let first = reload(&dir.0, &env, &mut kept);
    assert_eq!(kept.len(), 2);

    dir.write("b.yaml", &checks("Beta", 3, "30s"));
    let second = reload(&dir.0, &env, &mut kept);
    assert!(
        Arc::ptr_eq(
            check(&first, "alpha-check-0"),
            check(&second, "alpha-check-0")
        ),
        "a.yaml did not change: its checks are the same allocations"
    );
    assert!(!Arc::ptr_eq(
        check(&first, "beta-check-0"),
        check(&second, "beta-check-0")
    ));
    assert_ne!(
        check(&first, "beta-check-0").config_hash,
        check(&second, "beta-check-0").config_hash,
        "the changed file is read anew"
    );
    let fresh =
        config::load_sections(std::slice::from_ref(&dir.0), &env, Sections::Checks).unwrap();
    assert_eq!(
        summary(&second),
        summary(&fresh),
        "a reload gives what a fresh load gives"
    );
}

#[test]
fn a_reload_reads_a_file_again_when_a_variable_it_names_changed() {
    let dir = Dir::new("reload-vars");
    dir.write(
        "a.yaml",
        "groups:\n  - name: Api\n    checks:\n      - name: Health\n        http:\n          url: http://127.0.0.1/\n          headers: { Authorization: \"Bearer ${TOKEN}\" }\n",
    );
    dir.write("b.yaml", &checks("Other", 1, "60s"));
    let mut kept = Kept::default();
    let first = reload(&dir.0, &env_of(&[("TOKEN", "one")]), &mut kept);
    let same = reload(&dir.0, &env_of(&[("TOKEN", "one")]), &mut kept);
    assert!(Arc::ptr_eq(
        check(&first, "api-health"),
        check(&same, "api-health")
    ));
    let changed = reload(&dir.0, &env_of(&[("TOKEN", "two")]), &mut kept);
    let header = |c: &Catalog| match &check(c, "api-health").probe {
        config::Probe::Http(http) => http.headers()[0].1.clone(),
        _ => panic!("an HTTP check"),
    };
    assert_eq!(header(&first), "Bearer one");
    assert_eq!(
        header(&changed),
        "Bearer two",
        "the file was read again with the new value"
    );
    assert!(Arc::ptr_eq(
        check(&first, "other-check-0"),
        check(&changed, "other-check-0")
    ));
    let problems = config::load_reusing(
        std::slice::from_ref(&dir.0),
        &env_of(&[]),
        Sections::Checks,
        &mut kept,
    )
    .expect_err("TOKEN unset");
    assert!(
        problems.to_string().contains("`TOKEN` is not set"),
        "{problems}"
    );
}

/// Bad input on a reload: the broken file is reported with its position,
/// and nothing of the other files is lost, nor wrongly kept.
#[test]
fn a_broken_file_fails_the_reload_and_loses_nothing_of_the_others() {
    let dir = Dir::new("reload-broken");
    let env = env_of(&[]);
    dir.write("a.yaml", &checks("Alpha", 2, "60s"));
    dir.write("b.yaml", &checks("Beta", 2, "60s"));
    let mut kept = Kept::default();
    let first = reload(&dir.0, &env, &mut kept);

    dir.write("b.yaml", "groups:\n  - name: Beta\n    checks:\n      - name: \0\n        http: { url: 'ftp://x' }\n");
    let problems = config::load_reusing(
        std::slice::from_ref(&dir.0),
        &env,
        Sections::Checks,
        &mut kept,
    )
    .expect_err("b.yaml is broken");
    let text = problems.to_string();
    assert!(
        text.contains("b.yaml:"),
        "the position names the file: {text}"
    );
    assert!(!text.contains("a.yaml"), "a.yaml has no problem: {text}");
    assert_eq!(kept.len(), 1, "only the good file is kept");

    // The same bytes again: still refused, never taken from the cache.
    assert!(
        config::load_reusing(
            std::slice::from_ref(&dir.0),
            &env,
            Sections::Checks,
            &mut kept
        )
        .is_err()
    );

    dir.write("b.yaml", &checks("Beta", 2, "60s"));
    let fixed = reload(&dir.0, &env, &mut kept);
    assert_eq!(summary(&fixed), summary(&first));
    assert!(Arc::ptr_eq(
        check(&first, "alpha-check-1"),
        check(&fixed, "alpha-check-1")
    ));
}

/// What files say together is checked at every reload, kept files included:
/// a duplicate id across files, a window naming a check of another file, a
/// file removed.
#[test]
fn what_files_say_together_is_checked_at_every_reload() {
    let dir = Dir::new("reload-together");
    let env = env_of(&[]);
    dir.write("a.yaml", &checks("Alpha", 2, "60s"));
    dir.write(
        "b.yaml",
        "maintenance:\n  - name: Upgrade\n    start: 2026-12-01T02:00:00Z\n    duration: 1h\n    checks: [alpha-check-1]\n",
    );
    let mut kept = Kept::default();
    let first = reload(&dir.0, &env, &mut kept);
    assert_eq!(first.maintenance[0].checks.len(), 1);

    // The window's check goes away from a.yaml: the kept b.yaml now names
    // an unknown check.
    dir.write("a.yaml", &checks("Alpha", 1, "60s"));
    let problems = config::load_reusing(
        std::slice::from_ref(&dir.0),
        &env,
        Sections::Checks,
        &mut kept,
    )
    .expect_err("the window names a check that is gone");
    assert!(
        problems
            .to_string()
            .contains("maintenance `Upgrade` names the unknown check id `alpha-check-1`"),
        "{problems}"
    );

    // A second file defines the same ids as the kept a.yaml.
    dir.write("a.yaml", &checks("Alpha", 2, "60s"));
    reload(&dir.0, &env, &mut kept);
    dir.write("c.yaml", &checks("Alpha", 1, "60s"));
    let problems = config::load_reusing(
        std::slice::from_ref(&dir.0),
        &env,
        Sections::Checks,
        &mut kept,
    )
    .expect_err("duplicate ids across files");
    assert!(
        problems
            .to_string()
            .contains("duplicate check id `alpha-check-0`"),
        "{problems}"
    );

    std::fs::remove_file(dir.0.join("c.yaml")).unwrap();
    std::fs::remove_file(dir.0.join("b.yaml")).unwrap();
    let last = reload(&dir.0, &env, &mut kept);
    assert!(last.maintenance.is_empty(), "a removed file's windows go");
    assert_eq!(kept.len(), 1);
    let fresh =
        config::load_sections(std::slice::from_ref(&dir.0), &env, Sections::Checks).unwrap();
    assert_eq!(summary(&last), summary(&fresh));
}

/// Files with notification channels are never kept (they hold secrets), and
/// what was kept for one set of sections is not used for another.
#[test]
fn only_check_files_are_kept_and_only_for_the_same_sections() {
    let dir = Dir::new("reload-sections");
    let env = env_of(&[("PD_KEY", "R0UT1NG")]);
    dir.write("a.yaml", &checks("Alpha", 1, "60s"));
    dir.write(
        "n.yaml",
        "notifications:\n  channels:\n    - name: pager\n      pagerduty: { routing_key: \"${PD_KEY}\" }\n",
    );
    let mut kept = Kept::default();
    let all =
        config::load_reusing(std::slice::from_ref(&dir.0), &env, Sections::All, &mut kept).unwrap();
    assert_eq!(all.notifications.channels.len(), 1);
    assert_eq!(kept.len(), 1, "a.yaml only");
    let checks_only = reload(&dir.0, &env, &mut kept);
    assert!(!Arc::ptr_eq(
        check(&all, "alpha-check-0"),
        check(&checks_only, "alpha-check-0")
    ));
    let again =
        config::load_reusing(std::slice::from_ref(&dir.0), &env, Sections::All, &mut kept).unwrap();
    assert_eq!(
        again.notifications.channels.len(),
        1,
        "the channels are read every time"
    );
}
