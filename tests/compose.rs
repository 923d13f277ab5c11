//! docker-compose.yml cannot rot: Debian's `docker-compose config` validates it against the
//! Compose schema (no engine needed), and the pieces it names must exist and agree with the code:
//! the shipped nats-server configuration, the entrypoint that writes the service's config, and
//! that config, which must load.

use std::path::Path;
use std::process::Command;

const SECRETS: [(&str, &str); 4] = [
    (
        "IMPACT_ADMIN_TOKEN_SHA256",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ),
    ("IMPACT_NATS_PASSWORD", "service-password"),
    ("FO_TH_NATS_PASSWORD", "thai-password"),
    ("FO_LA_NATS_PASSWORD", "lao-password"),
];

fn compose(args: &[&str], secrets: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(secrets.iter().copied())
        .output()
        .expect("docker-compose is installed by scripts/test (Debian package docker-compose)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_compose_file_is_valid_and_wires_impact_to_the_shipped_nats_configuration() {
    let (ok, rendered, stderr) = compose(&["config"], &SECRETS);
    assert!(ok, "docker-compose config: {stderr}");
    for needle in [
        "nats:",
        "impact:",
        "/etc/nats/nats-server.conf",
        "/deploy/nats:/etc/nats:ro",
        "/etc/impact/entrypoint.sh",
        "/readyz",
        "nats-data",
        "impact-data",
        "condition: service_healthy",
    ] {
        assert!(rendered.contains(needle), "{needle:?} missing:\n{rendered}");
    }
    assert_eq!(
        rendered.matches("    profiles:\n    - cluster\n").count(),
        5,
        "the cluster's three servers and two instances are a profile of their own:\n{rendered}"
    );

    let (ok, rendered, stderr) = compose(&["--profile", "cluster", "config"], &SECRETS);
    assert!(ok, "docker-compose --profile cluster config: {stderr}");
    for needle in [
        "n1:",
        "n2:",
        "n3:",
        "/etc/nats/cluster/n1.conf",
        "/etc/nats/cluster/n3.conf",
        "impact-a:",
        "impact-b:",
        "nats://n1:4222,nats://n2:4222,nats://n3:4222",
        "IMPACT_NATS_REPLICAS: '3'",
    ] {
        assert!(rendered.contains(needle), "{needle:?} missing:\n{rendered}");
    }
}

#[test]
fn no_secret_has_a_default_that_others_could_guess() {
    for missing in SECRETS.map(|(name, _)| name) {
        let given: Vec<(&str, &str)> = SECRETS.into_iter().filter(|(n, _)| *n != missing).collect();
        let (ok, _, stderr) = compose(&["config"], &given);
        assert!(!ok, "the compose file ran without {missing}");
        assert!(stderr.contains(missing), "{stderr}");
    }
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml"))
            .unwrap();
    assert!(
        !text.contains("token_sha256 ="),
        "no token hash in the compose file"
    );
}

#[test]
fn the_configuration_the_container_writes_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for path in [
        "Dockerfile",
        "Cargo.lock",
        "src",
        "schemas",
        "benches",
        "deploy/impact-entrypoint.sh",
        "deploy/nats/nats-server.conf",
        "deploy/nats/users.conf",
        "deploy/nats/cluster/n1.conf",
        "deploy/nats/cluster/n2.conf",
        "deploy/nats/cluster/n3.conf",
    ] {
        assert!(root.join(path).exists(), "{path} is missing");
    }
    for (urls, replicas) in [
        ("nats://nats:4222", "1"),
        ("nats://n1:4222,nats://n2:4222,nats://n3:4222", "3"),
    ] {
        let run = tempfile::tempdir().unwrap();
        let written = Command::new("sh")
            .arg(root.join("deploy/impact-entrypoint.sh"))
            .arg("--write-only")
            .env("IMPACT_RUN_DIR", run.path())
            .env("IMPACT_NATS_URLS", urls)
            .env("IMPACT_NATS_REPLICAS", replicas)
            .envs(SECRETS)
            .output()
            .unwrap();
        assert!(
            written.status.success(),
            "{}",
            String::from_utf8_lossy(&written.stderr)
        );
        let overrides = impact::config::Overrides {
            config_file: Some(run.path().join("impact.toml")),
            http_addr: Some("0.0.0.0:8080".into()),
            data_dir: Some("/data".into()),
            ..Default::default()
        };
        let config =
            impact::config::Config::load(&overrides).expect("the container's config loads");
        assert!(
            config.auth_enabled(),
            "listening on 0.0.0.0 needs principals"
        );
        let nats = config.nats.unwrap();
        assert_eq!(nats.urls.join(","), urls);
        assert_eq!(nats.replicas.to_string(), replicas);
        assert_eq!(nats.inbox_prefix.as_deref(), Some("_INBOX_impact"));
        match nats.auth {
            impact::config::NatsAuth::UserPassword { user, password } => {
                assert_eq!(
                    (user.as_str(), password.expose()),
                    ("impact", "service-password")
                )
            }
            other => panic!("{other:?}"),
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(run.path().join("nats-password"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o077, 0, "the password file is the owner's alone");
    }
}
