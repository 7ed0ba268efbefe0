//! `platform localchain` as a real process, and `platform chain …` against it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

mod common;
/// The fake subtensor node of the chain crate's tests.
#[path = "../../../crates/chain/tests/common/fake_subtensor.rs"]
#[allow(dead_code)]
mod fake_subtensor;

use common::{json, platform};

/// `platform chain set-weights` with the usual arguments plus `extra`.
fn set_weights(
    url: &str,
    netuid: &str,
    hotkey: &str,
    uids: &str,
    weights: &str,
    extra: &[&str],
) -> Output {
    let args = [
        "chain",
        "set-weights",
        "--chain",
        url,
        "--netuid",
        netuid,
        "--hotkey",
        hotkey,
        "--uids",
        uids,
        "--weights",
        weights,
    ];
    platform(&[&args[..], extra].concat())
}

/// `platform chain metagraph --json` of the dev genesis: 12 neurons, //Alice first with a
/// validator permit.
fn dev_metagraph(url: &str) -> Vec<serde_json::Value> {
    let meta = json(&platform(&["chain", "metagraph", "--chain", url, "--json"]));
    let neurons = meta.as_array().unwrap().clone();
    assert_eq!(neurons.len(), 12);
    assert_eq!(
        neurons[0]["hotkey"],
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
    );
    assert_eq!(neurons[0]["validator_permit"], true);
    neurons
}

/// A LocalChain child process, stopped with SIGTERM on drop.
struct LocalChainProcess {
    child: Child,
    url: String,
}

impl LocalChainProcess {
    fn start(extra: &[&str]) -> LocalChainProcess {
        let genesis = if extra.contains(&"--genesis") {
            &[][..]
        } else {
            &["--dev"][..]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_platform"))
            .args(["localchain", "--listen", "127.0.0.1:0", "--json"])
            .args(genesis)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["simulation"], true);
        LocalChainProcess {
            url: v["url"].as_str().unwrap().to_string(),
            child,
        }
    }

    fn stop(&mut self) -> std::process::ExitStatus {
        // SIGTERM: the server shuts down gracefully.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for LocalChainProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn localchain_serves_the_chain_commands() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().display().to_string();
    // Blocks every minute: the rate limit below must not expire while the test runs.
    let mut chain = LocalChainProcess::start(&["--block-time-ms", "60000", "--data-dir", &data]);
    let url = chain.url.clone();

    let neurons = dev_metagraph(&url);
    assert!(neurons[0]["stake"].as_u64().unwrap() > neurons[1]["stake"].as_u64().unwrap());
    assert_eq!(neurons[11]["validator_permit"], false);

    let out = set_weights(&url, "1", "//Bob", "4,5,6", "1,2,4", &["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let w = json(&platform(&["chain", "weights", "--chain", &url, "--json"]));
    let rows = w.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["uid"], 1);
    assert_eq!(
        rows[0]["hotkey"],
        "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
    );
    assert_eq!(rows[0]["uids"], serde_json::json!([4, 5, 6]));
    assert_eq!(rows[0]["weights"], serde_json::json!([16383, 32767, 65535]));

    // With Alice (40% of stake) agreeing with Bob (30%), the stake-weighted median follows them.
    let out = set_weights(&url, "1", "//Alice", "4,5,6", "1,2,4", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let median = json(&platform(&[
        "chain",
        "consensus",
        "--chain",
        &url,
        "--json",
    ]));
    let uids: Vec<u64> = median
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_u64().unwrap())
        .collect();
    assert_eq!(uids, vec![4, 5, 6]);

    // Bad input: each a clear error naming the problem.
    // (Charlie has set nothing, so the rate limit does not hide the other checks; Bob just set.)
    let cases: [(&str, &[&str], &str); 4] = [
        (
            "//Charlie",
            &["--uids", "4,5", "--weights", "1"],
            "same length",
        ),
        (
            "//Charlie",
            &["--uids", "4,200", "--weights", "1,1"],
            "uid 200",
        ),
        ("//Charlie", &["--uids", "4,4", "--weights", "1,1"], "twice"),
        (
            "//Bob",
            &["--uids", "4", "--weights", "1"],
            "one setting per",
        ),
    ];
    for (hotkey, extra, expected) in cases {
        let out = platform(
            &[
                &["chain", "set-weights", "--chain", &url, "--netuid", "1"],
                &["--hotkey", hotkey][..],
                extra,
            ]
            .concat(),
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{extra:?}: {err}");
    }
    let out = set_weights(&url, "1", "//Miner1", "5", "1", &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no validator permit"));
    let out = platform(&["chain", "metagraph", "--chain", &url, "--netuid", "7"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("subnet 7 does not exist"));

    let reg = json(&platform(&[
        "chain", "register", "--chain", &url, "--hotkey", "//Miner9", "--json",
    ]));
    assert_eq!(reg["uid"], 12);
    // --hotkey also takes a keystore name.
    let keys = d.path().join("node");
    let keys = keys.display().to_string();
    let generated = platform(&[
        "keys",
        "generate",
        "--data-dir",
        &keys,
        "--name",
        "miner",
        "--json",
    ]);
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let reg = json(&platform(&[
        "chain",
        "register",
        "--chain",
        &url,
        "--hotkey",
        "miner",
        "--data-dir",
        &keys,
        "--json",
    ]));
    assert_eq!(reg["uid"], 13);

    assert!(chain.stop().success(), "SIGTERM stops the server cleanly");

    // Restarted on the same data dir, the chain resumes: Miner9 is still registered.
    let chain = LocalChainProcess::start(&["--data-dir", &data]);
    let meta = json(&platform(&[
        "chain",
        "metagraph",
        "--chain",
        &chain.url,
        "--json",
    ]));
    assert_eq!(meta.as_array().unwrap().len(), 14);
}

#[test]
fn endpoints_that_cannot_work_are_clear_errors() {
    // Nothing listens on port 1: the error names the endpoint.
    let out = platform(&["chain", "metagraph", "--chain", "ws://127.0.0.1:1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ws://127.0.0.1:1"));
    let out = platform(&[
        "chain",
        "register",
        "--chain",
        "wss://entrypoint-finney.opentensor.ai",
        "--hotkey",
        "//Alice",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("btcli"));
    // Nothing listens on port 1.
    let out = platform(&["chain", "metagraph", "--chain", "http://127.0.0.1:1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("http://127.0.0.1:1"));
    let out = platform(&["localchain", "--dev", "--listen", "0.0.0.0:0"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    // Bittensor's network names map to the endpoints btcli uses.
    let stderr = |args: &[&str]| String::from_utf8_lossy(&platform(args).stderr).to_string();
    let e = stderr(&[
        "chain",
        "register",
        "--subtensor.network",
        "finney",
        "--hotkey",
        "//A",
    ]);
    assert!(e.contains("btcli"), "{e}");
    let e = stderr(&[
        "chain",
        "metagraph",
        "--subtensor.network",
        "ws://127.0.0.1:1",
    ]);
    assert!(e.contains("cannot use chain ws://127.0.0.1:1"), "{e}");
    let e = stderr(&["chain", "metagraph", "--subtensor.network", "mars"]);
    assert!(e.contains("expected finney, test, archive, local"), "{e}");
    let e = stderr(&["chain", "metagraph"]);
    assert!(e.contains("no chain: give --chain"), "{e}");
}

#[test]
fn commit_reveal_through_the_cli() {
    let d = tempfile::tempdir().unwrap();
    let alice = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
    let miner = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty";
    let genesis = d.path().join("genesis.toml");
    std::fs::write(
        &genesis,
        format!(
            r#"
netuid = 2
owner = "{alice}"
[hyperparameters]
tempo = 4
min_allowed_weights = 1
max_weights_limit = 65535
weights_version_key = 0
weights_set_rate_limit = 1
commit_reveal_weights_enabled = true
commit_reveal_version = 2
reveal_period_epochs = 1
[[neurons]]
hotkey = "{alice}"
stake = 1000
validator_permit = true
[[neurons]]
hotkey = "{miner}"
"#
        ),
    )
    .unwrap();
    let g = genesis.display().to_string();
    let chain = LocalChainProcess::start(&["--genesis", &g, "--block-time-ms", "100"]);
    let keys = d.path().join("validator");
    let keys = keys.display().to_string();

    // Without a data dir there is nowhere to keep the reveal data.
    let out = set_weights(&chain.url, "2", "//Alice", "1", "7", &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("commit-reveal"));

    let c = json(&set_weights(
        &chain.url,
        "2",
        "//Alice",
        "0,1",
        "1,3",
        &["--data-dir", &keys, "--json"],
    ));
    assert_eq!(c["mode"], "committed");
    assert!(c["reveal_from"].as_u64().unwrap() > c["block"].as_u64().unwrap());
    // Nothing is on chain until the reveal.
    let w = json(&platform(&[
        "chain", "weights", "--chain", &chain.url, "--netuid", "2", "--json",
    ]));
    assert!(w.as_array().unwrap().is_empty());

    let r = json(&platform(&[
        "chain",
        "reveal",
        "--chain",
        &chain.url,
        "--hotkey",
        "//Alice",
        "--data-dir",
        &keys,
        "--wait",
        "--json",
    ]));
    assert_eq!(r[0]["result"], "revealed", "{r}");
    let w = json(&platform(&[
        "chain", "weights", "--chain", &chain.url, "--netuid", "2", "--json",
    ]));
    assert_eq!(w[0]["uids"], serde_json::json!([0, 1]));
    assert_eq!(w[0]["weights"], serde_json::json!([21845, 65535]));
}

/// `set-weights --dry-run`: without a chain, the exact `commit_timelocked_weights` a
/// subtensor subnet would get for a drand quicknet round (here 1000, whose signature is public,
/// so the test can open it) or a plain `set_weights`; with a LocalChain taking timelocked
/// commits, the round its clock gives, and then the real thing.
#[test]
fn timelocked_weights_through_the_cli() {
    use platform_chain::timelock::{WeightsPayload, open};
    use platform_crypto::timelock::RoundSignature;
    let dry = |extra: &[&str]| {
        let args = [
            "chain",
            "set-weights",
            "--hotkey",
            "//Alice",
            "--netuid",
            "1",
            "--uids",
            "0,3",
            "--weights",
            "100,200",
            "--version-key",
            "9",
            "--dry-run",
            "--json",
        ];
        json(&platform(&[&args[..], extra].concat()))
    };
    let plan = dry(&["--reveal-round", "1000"]);
    assert_eq!(
        (
            &plan["mode"],
            &plan["pallet_index"],
            &plan["call_index"],
            &plan["reveal_round"]
        ),
        (&"timelocked".into(), &7.into(), &113.into(), &1000.into()),
        "{plan}"
    );
    let commit = hex::decode(plan["commit"].as_str().unwrap()).unwrap();
    assert_eq!(plan["commit_bytes"], commit.len());
    // Drand quicknet's signature of round 1000 opens it.
    let sig = RoundSignature::from_bytes(&hex::decode("b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e342b73a8dd2bacbe47e4b6b63ed5e39").unwrap()).unwrap();
    let alice = platform_crypto::parse_suri("//Alice").unwrap().hotkey().0;
    assert_eq!(
        open(&commit, &sig).unwrap(),
        WeightsPayload {
            hotkey: alice,
            uids: vec![0, 3],
            values: vec![100, 200],
            version_key: 9
        }
    );
    let plain = dry(&[]);
    assert_eq!(
        (&plain["mode"], &plain["call_index"]),
        (&"set".into(), &0.into())
    );
    assert!(plain.get("commit").is_none());

    let chain = LocalChainProcess::start(&["--commit-reveal", "4", "--block-time-ms", "100"]);
    let planned = dry(&["--chain", &chain.url]);
    assert_eq!(planned["mode"], "timelocked", "{planned}");
    assert_eq!(planned["commit_reveal_version"], 4);
    assert!(planned["reveal_round"].as_u64().unwrap() > 1);
    let sent = json(&set_weights(
        &chain.url,
        "1",
        "//Alice",
        "4,5",
        "1,2",
        &["--json"],
    ));
    assert_eq!(sent["mode"], "timelocked", "{sent}");
    assert!(sent["reveal_round"].as_u64().unwrap() >= planned["reveal_round"].as_u64().unwrap());
    // Refused before anything is built: mismatched lists.
    let out = platform(&[
        "chain",
        "set-weights",
        "--hotkey",
        "//Alice",
        "--netuid",
        "1",
        "--uids",
        "0,3",
        "--weights",
        "1",
        "--dry-run",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 uids but 1 weights"));
}

/// `platform chain metagraph|set-weights|weights` against a subtensor node (the fake node of
/// the chain tests, over a loopback WebSocket).
#[test]
fn chain_commands_against_subtensor() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = platform_chain::local::genesis::dev().into_state().unwrap();
    let fake = fake_subtensor::FakeSubtensor::new(state);
    let url = rt.block_on(fake_subtensor::serve_websocket(fake.clone()));

    let neurons = dev_metagraph(&url);
    assert!(neurons[0]["stake"].as_u64().unwrap() > 0);

    let out = set_weights(&url, "1", "//Alice", "4,5", "10,20", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!((received[0].pallet, received[0].call_index), (7, 0));

    let rows = json(&platform(&[
        "chain", "weights", "--chain", &url, "--netuid", "1", "--json",
    ]));
    assert_eq!(
        rows[0]["hotkey"],
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
    );
    assert_eq!(rows[0]["uids"], serde_json::json!([4, 5]));
    assert_eq!(rows[0]["weights"], serde_json::json!([32767, 65535]));

    // The rate limit, before anything is signed.
    let out = set_weights(&url, "1", "//Alice", "4", "1", &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("allows one setting per 10 blocks"));
    assert_eq!(fake.received().len(), 1);
    // Registration is btcli's job on subtensor.
    let out = platform(&[
        "chain",
        "register",
        "--chain",
        &url,
        "--hotkey",
        "//Newcomer",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("btcli"));

    // What Platform would do on this subnet, read through the subtensor client.
    let report = json(&platform(&[
        "chain", "check", "--chain", &url, "--netuid", "1", "--json",
    ]));
    assert_eq!(report["weights"]["mode"], "set", "{report}");
    assert_eq!(report["weights"]["call_index"], 0);
    assert_eq!(
        report["validators"].as_array().unwrap().len(),
        4,
        "{report}"
    );
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    assert_eq!(report["runtime"]["spec_version"], 393, "{report}");
    assert_eq!(report["runtime"]["changed"], serde_json::json!([]));

    // A network launched from this subnet: the four dev validators' peer records go into
    // the Commitments pallet; `platform genesis` derives the genesis from the chain.
    let client = rt
        .block_on(platform_chain::subtensor::SubtensorChain::connect(&url))
        .unwrap();
    for (i, name) in ["//Alice", "//Bob", "//Charlie", "//Dave"]
        .iter()
        .enumerate()
    {
        let k = platform_crypto::parse_suri(name).unwrap();
        let addr = format!("/ip4/10.0.0.{}/tcp/30333", i + 1);
        let record =
            platform_node::genesis::PeerRecord::new(&k, platform_primitives::NetUid(1), vec![addr])
                .unwrap();
        rt.block_on(client.set_commitment(&k, 1, record.encode().unwrap()))
            .unwrap();
    }
    let derived = json(&platform(&[
        "genesis", "--chain", &url, "--netuid", "1", "--json",
    ]));
    let validators = derived["validators"].as_array().unwrap();
    assert_eq!(validators.len(), 4, "{derived}");
    assert!(validators.iter().all(|v| v["bound"] == true), "{derived}");
    assert_eq!(
        validators[0]["addrs"][0], "/ip4/10.0.0.1/tcp/30333",
        "{derived}"
    );
    assert_eq!(
        derived["owner"],
        platform_chain::local::genesis::dev().owner.to_ss58()
    );

    // A runtime upgrade that changes set_weights: named by `check`, refused by `set-weights`,
    // which sends nothing.
    fake.upgrade_runtime(395, fake_subtensor::upgraded::changed_set_weights());
    fake.produce_block();
    let out = platform(&["chain", "check", "--chain", &url, "--netuid", "1", "--json"]);
    assert!(!out.status.success(), "a problem is a non-zero exit");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["runtime"]["spec_version"], 395, "{report}");
    assert_eq!(
        report["runtime"]["changed"],
        serde_json::json!(["SubtensorModule.set_weights"])
    );
    // The changed call is the one problem (its text is for people; the fields say which).
    assert_eq!(
        report["problems"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    let before = fake.received().len();
    let out = set_weights(&url, "1", "//Bob", "4", "1", &[]);
    assert!(!out.status.success());
    assert_eq!(fake.received().len(), before);
}

/// `platform chain check`: with a chain, what Platform would do there (here a LocalChain whose
/// subnet takes timelocked commits) and what would stop it, as a non-zero exit; without one,
/// a clear failure — it never passes without having read a chain.
#[test]
fn chain_check_reports_what_platform_would_do_and_fails_without_a_chain() {
    let out = platform(&["chain", "check", "--netuid", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no chain"));

    let chain = LocalChainProcess::start(&["--commit-reveal", "4", "--block-time-ms", "100"]);
    let check = |extra: &[&str]| {
        platform(
            &[
                &[
                    "chain", "check", "--chain", &chain.url, "--netuid", "1", "--json",
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    let out = check(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(
        (&report["weights"]["mode"], &report["weights"]["call_index"]),
        (&"timelocked".into(), &113.into()),
        "{report}"
    );
    assert_eq!(report["weights"]["commit_reveal_version"], 4);
    assert!(report["weights"]["reveal_round"].as_u64().unwrap() > 0);
    assert!(report["next_epoch_block"].as_u64() > report["block"].as_u64());
    let validators = report["validators"].as_array().unwrap();
    assert_eq!(validators.len(), 4, "{report}");
    assert!(validators.iter().all(|v| v["validator_permit"] == true));

    // A miner's hotkey would have its weights refused: reported, and the exit code says so.
    let miner = platform_crypto::parse_suri("//Miner1")
        .unwrap()
        .hotkey()
        .to_ss58();
    let out = check(&["--validator", &miner]);
    assert_eq!(out.status.code(), Some(2));
    let report = json(&out);
    assert_eq!(report["validator"]["validator_permit"], false);
    assert!(
        report["problems"][0]
            .as_str()
            .unwrap()
            .contains("no validator permit"),
        "{report}"
    );
}

/// btcli's wallet options and its encrypted key files: a hotkey that `bittensor-wallet`
/// encrypted (crates/crypto/tests/vectors/keyfiles) opens with its password from a file,
/// from PLATFORM_WALLET_PASSWORD or from btcli's BT_PW_… variable, and is refused clearly
/// without one or with a wrong one.
#[test]
fn btcli_wallets_and_encrypted_key_files() {
    use std::os::unix::fs::PermissionsExt;
    let vectors = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/crypto/tests/vectors/keyfiles");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vectors.join("keyfiles.json")).unwrap()).unwrap();
    let v = &meta["files"][0];
    assert_eq!(v["file"], "w1/hotkeys/h1");
    let (password, ss58) = (v["password"].as_str().unwrap(), v["ss58"].as_str().unwrap());
    let wallets = tempfile::tempdir().unwrap();
    let hotkeys = wallets.path().join("w1/hotkeys");
    std::fs::create_dir_all(&hotkeys).unwrap();
    let key_file = hotkeys.join("h1");
    std::fs::copy(vectors.join("w1/hotkeys/h1"), &key_file).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let wallet_path = wallets.path().display().to_string();
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_platform"));
        cmd.args([
            "chain",
            "set-weights",
            "--wallet.name",
            "w1",
            "--wallet.hotkey",
            "h1",
            "--wallet.path",
            &wallet_path,
            "--netuid",
            "1",
            "--uids",
            "0",
            "--weights",
            "1",
            "--dry-run",
            "--json",
        ])
        .args(extra)
        .env_remove("PLATFORM_CHAIN")
        .env_remove("PLATFORM_WALLET_PASSWORD")
        .env_remove("PLATFORM_WALLET_PASSWORD_FILE")
        .stdin(Stdio::null());
        for (k, val) in env {
            cmd.env(k, val);
        }
        cmd.output().unwrap()
    };
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    // No password anywhere (and no terminal to ask on).
    let none = run(&[], &[]);
    assert!(!none.status.success());
    assert!(stderr(&none).contains("encrypted"), "{}", stderr(&none));

    // From the environment.
    let plan = json(&run(&[], &[("PLATFORM_WALLET_PASSWORD", password)]));
    assert_eq!(plan["hotkey"], ss58, "{plan}");

    // From a password file, which must be private like any secret.
    let pw_file = wallets.path().join("pw");
    std::fs::write(&pw_file, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let pw_arg = pw_file.display().to_string();
    let open = run(&["--wallet.password-file", &pw_arg], &[]);
    assert!(!open.status.success());
    assert!(stderr(&open).contains("chmod 600"), "{}", stderr(&open));
    std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let plan = json(&run(&["--wallet.password-file", &pw_arg], &[]));
    assert_eq!(plan["hotkey"], ss58, "{plan}");

    // From btcli's variable, named after the key file's path.
    let var = platform_crypto::keyfile::btcli_env_var_name(&key_file.display().to_string());
    let obfuscated: Vec<u8> = password
        .bytes()
        .zip(var.bytes().cycle())
        .map(|(p, k)| p ^ k)
        .collect();
    let value = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, obfuscated);
    let plan = json(&run(&[], &[(&var, &value)]));
    assert_eq!(plan["hotkey"], ss58, "{plan}");

    // A wrong password says so.
    let wrong = run(&[], &[("PLATFORM_WALLET_PASSWORD", "nope")]);
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("wrong password"),
        "{}",
        stderr(&wrong)
    );

    // Both ways of naming a key at once is an error, as is a wallet that is not there.
    let both = run(&["--hotkey", "//Alice"], &[]);
    assert!(stderr(&both).contains("not both"), "{}", stderr(&both));
    let missing = platform(&[
        "chain",
        "set-weights",
        "--wallet.name",
        "nowallet",
        "--wallet.path",
        &wallet_path,
        "--netuid",
        "1",
        "--uids",
        "0",
        "--weights",
        "1",
        "--dry-run",
    ]);
    assert!(
        stderr(&missing).contains("no key file"),
        "{}",
        stderr(&missing)
    );
}

/// A dev LocalChain at subnet size: 64 validators (//Alice … //Dave, then //Validator5 …
/// //Validator64) with permits and uneven stakes, the first ones set by --stakes, and the
/// remaining 192 UIDs filled with miners; past 256 UIDs it refuses.
#[test]
fn localchain_dev_networks_reach_subnet_size() {
    let chain = LocalChainProcess::start(&[
        "--validators",
        "64",
        "--miners",
        "192",
        "--stakes",
        "5000,100",
    ]);
    let meta = json(&platform(&[
        "chain",
        "metagraph",
        "--chain",
        &chain.url,
        "--json",
    ]));
    let neurons = meta.as_array().unwrap();
    assert_eq!(neurons.len(), 256);
    let stake = |i: usize| neurons[i]["stake"].as_u64().unwrap();
    let rao = 1_000_000_000;
    assert_eq!(
        (stake(0), stake(1), stake(2)),
        (5000 * rao, 100 * rao, 2000 * rao)
    );
    assert!((0..64).all(|i| neurons[i]["validator_permit"] == true));
    assert!((64..256).all(|i| neurons[i]["validator_permit"] == false));
    let v64 = platform_crypto::parse_suri("//Validator64")
        .unwrap()
        .hotkey()
        .to_ss58();
    assert_eq!(neurons[63]["hotkey"], v64);
    // Stakes after the named four differ from each other.
    let mut generated: Vec<u64> = (4..64).map(stake).collect();
    generated.dedup();
    assert_eq!(generated.len(), 60);

    let out = platform(&[
        "localchain",
        "--dev",
        "--validators",
        "64",
        "--miners",
        "193",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 to 192 miners"));
}
