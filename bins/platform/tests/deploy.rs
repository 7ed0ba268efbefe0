//! What ships under `deploy/` for operators: the Prometheus alert rules fire on a network whose
//! finalization really stalls, every metric the rules and the Grafana dashboard use is one a
//! node exports, and the container, compose and systemd files parse and name only what exists.
//!
//! Needs `promtool` (Debian's `prometheus` package; `scripts/setup` installs it where it can,
//! and `scripts/test` skips this file, saying so, where it cannot be had). Run here without it,
//! the tests fail: they never pass without the real rule engine and parser.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{StatusEvents, get_text, long_devnet, process_id, wait_for_status};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Runs `promtool` with `args`; its output, after asserting success.
fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool").args(args).output().expect(
        "promtool is not installed: scripts/setup installs Debian's prometheus package (as \
         root), and scripts/test skips this test where it cannot",
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

/// Every `platform_…` metric name in `text`, without histogram sample suffixes.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("platform_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        out.insert(base.to_string());
    }
    out
}

/// The samples of `metric` (unlabelled) in a scrape.
fn sample(scrape: &str, metric: &str) -> Option<u64> {
    scrape.lines().find_map(|l| {
        l.strip_prefix(metric)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Four validators finalize; Bob and Charlie (50 % of the stake) are killed, and finalization
/// stops. Alice's `/metrics`, scraped every second through both phases and replayed to
/// `promtool test rules` at the compose network's scrape interval (15 s: a stalled height is
/// constant whatever the interval), fire `PlatformFinalizationStalled` at the end and nothing
/// while the network was healthy. On the way: `/metrics` passes `promtool check metrics`, and
/// every metric the alert rules and the Grafana dashboard use is one the node exports.
#[test]
fn the_finalization_stalled_alert_fires_when_finalization_stalls() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let mut devnet = long_devnet(&dir, "20", &[]);
    let api = devnet.api("alice");
    // Labelled families show once they have a member: wait for an evaluation too.
    wait_for_status(
        &api,
        "Alice to finalize, read the chain and evaluate",
        |s| {
            (s["height"].as_u64()? >= 5 && !s["chain"].is_null() && s["evaluations"].as_u64()? >= 1)
                .then_some(())
        },
    );
    let scrape = || get_text(&api, "/metrics");

    // The exposition format, checked by Prometheus's own parser and linter.
    let text = scrape().unwrap();
    let path = tmp.path().join("metrics.txt");
    std::fs::write(&path, &text).unwrap();
    let check = Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", path.display()))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // Every name the rules and the dashboard query is exported.
    let exported = metric_names(&text);
    for file in ["prometheus/alerts.yml", "grafana/platform.json"] {
        let used = metric_names(&std::fs::read_to_string(deploy().join(file)).unwrap());
        assert!(!used.is_empty());
        let missing: Vec<_> = used.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{file} uses {missing:?}, not in /metrics"
        );
    }

    let mut heights = Vec::new();
    let mut partitioned = Vec::new();
    // One scrape per status event of Alice's (her status changes at least every 500 ms: the
    // time since each validator was last heard moves even while nothing finalizes).
    let mut events = StatusEvents::open(&api);
    let mut record = |heights: &mut Vec<u64>, partitioned: &mut Vec<u64>| {
        events.next();
        let text = scrape().expect("Alice answers /metrics");
        heights.push(sample(&text, "platform_finalized_height").unwrap());
        partitioned.push(sample(&text, "platform_partitioned").unwrap());
    };
    for _ in 0..8 {
        record(&mut heights, &mut partitioned);
    }
    assert!(heights[7] > heights[0], "not finalizing: {heights:?}");
    let healthy = heights.len();

    // The fault: Bob and Charlie are killed (Alice and Dave hold 50 % of the stake).
    for name in ["bob", "charlie"] {
        let config = dir.join(name).join("config.toml");
        let needle = format!(" run --config {}", config.display());
        let pid = process_id(&needle).expect("the validator's process");
        common::sigkill(&pid);
    }
    // The fault took: Alice hears less than two thirds of the stake, so nothing can finalize.
    wait_for_status(&api, "Alice's partition alarm", |s| {
        (s["partitioned"] == true).then_some(())
    });
    for _ in 0..16 {
        record(&mut heights, &mut partitioned);
    }
    let stalled = &heights[healthy..];
    assert!(stalled.iter().all(|h| *h == stalled[0]), "{heights:?}");

    // Replayed to Prometheus's rule engine: one sample per 15 s scrape interval.
    let series = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
    let labels = r#"{instance="alice:8080", job="platform"}"#;
    let last = 15 * (heights.len() - 1);
    let tests = format!(
        r#"rule_files:
  - {rules}
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: 'platform_finalized_height{labels}'
        values: '{heights}'
      - series: 'platform_partitioned{labels}'
        values: '{partitioned}'
    alert_rule_test:
      - eval_time: {healthy_at}s
        alertname: PlatformFinalizationStalled
        exp_alerts: []
      - eval_time: {last}s
        alertname: PlatformFinalizationStalled
        exp_alerts:
          - exp_labels:
              severity: critical
              instance: alice:8080
              job: platform
            exp_annotations:
              summary: "alice:8080 finalized nothing for 3 minutes"
              description: >-
                Check `platform status` and `platform peers`: fewer than two thirds of the stake
                may be reachable (see PlatformPartitioned), or this node may be stuck behind.
"#,
        rules = deploy().join("prometheus/alerts.yml").display(),
        heights = series(&heights),
        partitioned = series(&partitioned),
        healthy_at = 15 * (healthy - 1),
    );
    let file = tmp.path().join("stall_test.yml");
    std::fs::write(&file, tests).unwrap();
    promtool(&["test", "rules", file.to_str().unwrap()]);
    // Stopped with two of its validators dead, the devnet still stops the rest (it used to
    // spend so long asking the dead ones for blocks that it was killed first, and Alice, Dave
    // and the chain ran on).
    drop(devnet);
    for name in ["alice", "dave"] {
        let config = dir.join(name).join("config.toml");
        let needle = format!(" run --config {}", config.display());
        assert_eq!(process_id(&needle), None, "{name} outlived the devnet");
    }
}

/// The Prometheus configuration and rules load; the compose file parses and mounts only files
/// that exist, every validator bootstraps from the ones before it at their fixed addresses,
/// and each port is published on loopback only; the Dockerfile copies only what exists; the
/// Grafana dashboard parses; the systemd unit passes `systemd-analyze verify`.
#[test]
fn the_deploy_files_parse_and_name_only_what_exists() {
    let d = deploy();
    let config = promtool(&[
        "check",
        "config",
        d.join("prometheus/prometheus.yml").to_str().unwrap(),
    ]);
    assert!(config.contains("SUCCESS: 8 rules found"), "{config}");

    let compose: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(d.join("docker-compose.yml")).unwrap())
            .unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let names: Vec<&str> = services.keys().filter_map(|k| k.as_str()).collect();
    for s in [
        "localchain",
        "alice",
        "bob",
        "charlie",
        "dave",
        "prometheus",
        "grafana",
    ] {
        assert!(names.contains(&s), "no service {s}: {names:?}");
    }
    let mut ips = BTreeSet::new();
    for (name, svc) in services {
        for v in svc["volumes"].as_sequence().into_iter().flatten() {
            let source = v.as_str().unwrap().split(':').next().unwrap();
            if let Some(rel) = source.strip_prefix("./") {
                assert!(d.join(rel).exists(), "{name:?} mounts missing {source}");
            }
        }
        for p in svc["ports"].as_sequence().into_iter().flatten() {
            assert!(
                p.as_str().unwrap().starts_with("127.0.0.1:"),
                "{name:?} publishes {p:?} beyond loopback"
            );
        }
        if let Some(ip) = svc["networks"]["platform"]["ipv4_address"].as_str() {
            assert!(ips.insert(ip.to_string()), "{ip} used twice");
        }
    }
    // Validators: hotkey, own address, then one bootstrap address per validator before it.
    let order = ["alice", "bob", "charlie", "dave"];
    for (i, name) in order.iter().enumerate() {
        let cmd: Vec<String> = services[*name]["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        let own = services[*name]["networks"]["platform"]["ipv4_address"]
            .as_str()
            .unwrap();
        assert_eq!(cmd[1], own);
        assert_eq!(cmd.len(), 2 + i, "{name}: {cmd:?}");
        for (j, boot) in cmd[2..].iter().enumerate() {
            let peer_ip = services[order[j]]["networks"]["platform"]["ipv4_address"]
                .as_str()
                .unwrap();
            assert!(boot.starts_with(&format!("/ip4/{peer_ip}/tcp/30333/p2p/12D3Koo")));
        }
    }
    // The validators' peer ids are the dev hotkeys' (as `platform init` derives them).
    let tmp = tempfile::tempdir().unwrap();
    for (j, uri) in ["//Alice", "//Bob", "//Charlie"].iter().enumerate() {
        let out = common::platform(&[
            "init",
            "--data-dir",
            tmp.path().join(j.to_string()).to_str().unwrap(),
            "--dev",
            "--hotkey",
            uri,
            "--json",
        ]);
        let v = common::json(&out);
        let dave = services["dave"]["command"].as_sequence().unwrap();
        let boot = dave[2 + j].as_str().unwrap();
        assert!(
            boot.ends_with(&format!("/p2p/{}", v["peer_id"].as_str().unwrap())),
            "{uri}: {boot}"
        );
    }

    let dockerfile = std::fs::read_to_string(d.join("Dockerfile")).unwrap();
    let repo = d.join("..");
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let source = parts[1];
        assert!(
            source == "." || repo.join(source).exists(),
            "COPY of missing {source}"
        );
    }
    assert!(dockerfile.contains("USER platform"), "runs as root");
    assert!(dockerfile.contains("VOLUME [\"/data\"]"));

    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("grafana/platform.json")).unwrap())
            .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    assert!(
        panels
            .iter()
            .all(|p| !p["targets"][0]["expr"].as_str().unwrap().is_empty())
    );

    // systemd: the unit as installed, with this build's binary in place of /usr/local/bin.
    let unit = std::fs::read_to_string(d.join("systemd/platform.service"))
        .unwrap()
        .replace("/usr/local/bin/platform", env!("CARGO_BIN_EXE_platform"));
    let path = tmp.path().join("platform.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", path.to_str().unwrap()])
        .output()
        .expect("systemd-analyze (systemd)");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !text.contains("platform.service:"),
        "{text}"
    );
}
