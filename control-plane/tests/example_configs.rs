//! Every example configuration under `deploy/config/` parses, and the
//! README's and the example's policy reference is the code's, so the
//! documented examples cannot drift from the code.

use std::path::Path;

use meridian_common::settings::markdown_table;
use meridian_common::snapshot::{CacheSettings, NetworkPolicy};
use meridian_control_plane::config::ControlConfig;

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_readme_policy_table_is_the_declared_one() {
    let table = markdown_table(&NetworkPolicy::reference());
    assert!(
        repo_file("README.md").contains(&table),
        "README.md must carry the policy table as declared in \
         common/src/snapshot/policy.rs; paste this:\n\n{table}"
    );
}

#[test]
fn the_readme_cache_table_is_the_declared_one() {
    let table = markdown_table(&CacheSettings::reference());
    assert!(
        repo_file("README.md").contains(&table),
        "README.md must carry the [networks.cache] table as declared in \
         common/src/snapshot/policy.rs; paste this:\n\n{table}"
    );
}

#[test]
fn the_example_config_sets_every_cache_field() {
    let text = repo_file("deploy/config/control.example.toml");
    let cache = text
        .split("[networks.cache]")
        .nth(1)
        .expect("control.example.toml has a [networks.cache] table");
    for field in CacheSettings::FIELDS {
        assert!(
            cache.lines().any(|l| l.starts_with(&format!("{field} = "))),
            "control.example.toml's [networks.cache] does not show `{field}`"
        );
    }
}

#[test]
fn the_example_config_sets_every_policy_field() {
    let text = repo_file("deploy/config/control.example.toml");
    for field in NetworkPolicy::FIELDS {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{field} = "))),
            "control.example.toml does not show `{field}`"
        );
    }
}

#[test]
fn every_example_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config");
    let mut parsed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = ControlConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !config.networks.is_empty(),
                "{} has no networks",
                path.display()
            );
            parsed += 1;
        }
    }
    assert!(parsed >= 1, "no example configs found in {}", dir.display());
}
