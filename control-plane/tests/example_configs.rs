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

/// README.md carries `rows` as a Markdown table.
fn assert_readme_carries(what: &str, rows: &[meridian_common::settings::FieldDoc]) {
    let table = markdown_table(rows);
    assert!(
        repo_file("README.md").contains(&table),
        "README.md must carry the {what} table as declared in \
         common/src/snapshot/policy.rs; paste this:\n\n{table}"
    );
}

/// Every one of `fields` is set on a line of its own in `toml`.
fn assert_sets_every_field(what: &str, toml: &str, fields: &[&str]) {
    for field in fields {
        assert!(
            toml.lines().any(|l| l.starts_with(&format!("{field} = "))),
            "control.example.toml's {what} does not show `{field}`"
        );
    }
}

#[test]
fn the_readme_tables_are_the_declared_ones() {
    assert_readme_carries("policy", &NetworkPolicy::reference());
    assert_readme_carries("[networks.cache]", &CacheSettings::reference());
}

#[test]
fn the_example_config_sets_every_field() {
    let text = repo_file("deploy/config/control.example.toml");
    assert_sets_every_field("[[networks]]", &text, NetworkPolicy::FIELDS);
    let cache = text
        .split("[networks.cache]")
        .nth(1)
        .expect("control.example.toml has a [networks.cache] table");
    assert_sets_every_field("[networks.cache]", cache, CacheSettings::FIELDS);
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
