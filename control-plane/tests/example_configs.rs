//! Every example configuration under `deploy/config/` parses, so the
//! documented examples cannot drift from the code.

use std::path::Path;

use meridian_control_plane::config::ControlConfig;

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
