//! docker-compose.yml cannot rot: Debian's `docker-compose config` validates it against the
//! Compose schema (no engine needed), and the pieces it names must exist and agree with the code.

use std::process::Command;

#[test]
fn the_compose_file_is_valid_and_wires_impact_to_nats() {
    let output = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("docker-compose is installed by scripts/test (Debian package docker-compose)");
    let rendered = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for needle in [
        "nats:",
        "impact:",
        "-js",
        "nats://nats:4222",
        "/readyz",
        "nats-data",
        "impact-data",
        "condition: service_healthy",
    ] {
        assert!(
            rendered.contains(needle),
            "{needle:?} missing from the rendered compose file:\n{rendered}"
        );
    }
}

#[test]
fn the_files_the_compose_file_and_dockerfile_use_exist_and_the_config_loads() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for path in [
        "Dockerfile",
        "Cargo.lock",
        "src",
        "schemas",
        "benches",
        "scripts/impact.docker.toml",
    ] {
        assert!(root.join(path).exists(), "{path} is missing");
    }
    let overrides = impact::config::Overrides {
        config_file: Some(root.join("scripts/impact.docker.toml")),
        nats_url: Some("nats://nats:4222".into()),
        http_addr: Some("0.0.0.0:8080".into()),
        data_dir: Some("/data".into()),
        nats_creds: None,
    };
    let config = impact::config::Config::load(&overrides).expect("the container's config loads");
    assert!(
        config.auth_enabled(),
        "listening on 0.0.0.0 needs principals"
    );
    assert_eq!(config.nats.unwrap().stream, "IMPACT");
}
