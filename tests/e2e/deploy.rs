//! The deployment files of `docker/` are current: `scripts/check-deploy.py` runs every fjord
//! configuration of the compose file and the Kubernetes manifests through `fjord config check`,
//! validates the manifests against the Kubernetes schema (kubernetes-validate, offline), matches
//! probes and health checks to the configured ports, and the metrics of the shipped Prometheus
//! rules and Grafana dashboard to those fjord defines.

use std::process::Command;

#[test]
fn every_config_and_manifest_in_docker_is_valid_and_current() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(fjord_testkit::python())
        .arg(format!("{repo}/scripts/check-deploy.py"))
        .args(["--fjord", env!("CARGO_BIN_EXE_fjord"), "--repo", repo])
        .output()
        .expect("cannot run scripts/check-deploy.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "deployment checks failed:\n{text}");
    // the checks ran, not just the script: each part reported
    for part in [
        "compose bridge-1",
        "k8s Deployment fjord-serve",
        "monitoring:",
        "Dockerfile:",
    ] {
        assert!(text.contains(part), "no check of {part:?}:\n{text}");
    }
}
