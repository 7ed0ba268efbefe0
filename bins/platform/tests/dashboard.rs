//! The dashboard in a real browser: a devnet runs, headless Chromium (driven over the DevTools
//! protocol on a pipe) opens each page of Alice's dashboard, waits for it to show live data and
//! checks what it shows against the JSON API. Screenshots go to `target/dashboard/`.
//!
//! Needs Debian's `chromium` (`scripts/setup` installs it where it can); `scripts/test` skips
//! this file, saying so, where it cannot be had. Run here without it, the test fails: it never
//! passes without a browser.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{get, long_devnet, wait_for_status};
use serde_json::{Value, json};

/// Headless Chromium with the DevTools protocol on a pipe (`--remote-debugging-pipe`: commands
/// in on fd 3, replies and events out on fd 4, each a JSON text ending in NUL), attached to one
/// page.
struct Browser {
    child: Child,
    commands: std::io::PipeWriter,
    replies: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let program = ["chromium", "chromium-browser"]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .expect(
                "Chromium is not installed: scripts/setup installs Debian's chromium (as root), \
                 and scripts/test skips this test where it cannot",
            );
        let profile = tempfile::tempdir().unwrap();
        let (cmd_in, cmd_out) = std::io::pipe().unwrap();
        let (reply_in, reply_out) = std::io::pipe().unwrap();
        // The shell hands the pipes to Chromium as fds 3 and 4 (stdin and stdout go nowhere).
        let child = Command::new("sh")
            .args([
                "-c",
                "exec \"$0\" \"$@\" 3<&0 4>&1 </dev/null >/dev/null 2>&1",
                program,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-pipe",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            // Its own process group, so that its helper processes go with it at the end.
            .process_group(0)
            .stdin(cmd_in)
            .stdout(reply_out)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reply_in);
            let mut buf = Vec::new();
            while reader.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                buf.pop();
                if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                    && tx.send(v).is_err()
                {
                    return;
                }
                buf.clear();
            }
        });
        let mut b = Browser {
            child,
            commands: cmd_out,
            replies: rx,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = b.call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = b.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b
    }

    /// Sends a command (to the attached page once there is one) and waits for its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).unwrap();
        let end = Instant::now() + Duration::from_secs(180);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let reply = self
                .replies
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("Chromium did not answer {method}"));
            if reply["id"] == json!(id) {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page; its value (JSON-serializable).
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(r["exceptionDetails"].is_null(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Opens `url` and waits until the page marks itself ready as `page`.
    fn open(&mut self, url: &str, page: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.until(
            &format!("the {page} page to show data"),
            &format!("document.body.dataset.ready === '{page}'"),
        );
    }

    /// Waits until the JavaScript condition `cond` holds in the page: checked at once and on
    /// every change to the document (a MutationObserver), for at most 170 s of page time.
    fn until(&mut self, what: &str, cond: &str) {
        let js = format!(
            "new Promise(resolve => {{
               const ok = () => {{ try {{ return !!({cond}); }} catch (e) {{ return false; }} }};
               if (ok()) return resolve(true);
               const o = new MutationObserver(() => {{
                 if (ok()) {{ o.disconnect(); resolve(true); }}
               }});
               o.observe(document, {{ subtree: true, childList: true, attributes: true, characterData: true }});
               setTimeout(() => {{ o.disconnect(); resolve(false); }}, 170000);
             }})"
        );
        assert_eq!(self.eval(&js), json!(true), "gave up waiting for {what}");
    }

    /// Waits for the page's content (`main`) to change once.
    fn next_change(&mut self) {
        let js = "new Promise(resolve => {
                    const o = new MutationObserver(() => { o.disconnect(); resolve(true); });
                    o.observe(document.getElementById('main'),
                              { subtree: true, childList: true, characterData: true });
                    setTimeout(() => { o.disconnect(); resolve(false); }, 60000);
                  })";
        assert_eq!(self.eval(js), json!(true), "the page stopped changing");
    }

    fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        );
    }
}

impl Drop for Browser {
    /// Kills Chromium's whole process group and waits (at most 5 s) until none of it is left:
    /// a helper that outlived the main process used to write into the profile folder after
    /// it was removed, leaving a folder behind in the temporary directory.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && Command::new("kill")
                .args(["-0", "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn text_of(b: &mut Browser, testid: &str) -> String {
    b.eval(&format!(
        "(document.querySelector('[data-testid=\"{testid}\"]') || {{}}).textContent || ''"
    ))
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// The `attr` of every element with `data-testid="{testid}"`, in page order.
fn attrs_of(b: &mut Browser, testid: &str, attr: &str) -> Vec<String> {
    let v = b.eval(&format!(
        "[...document.querySelectorAll('[data-testid=\"{testid}\"]')].map(e => e.getAttribute('{attr}'))"
    ));
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect()
}

/// Reads what the page shows and what the API says until they agree (both move with the
/// network: after a disagreement, the next read follows the page's next update).
fn agree<T: PartialEq + std::fmt::Debug>(
    b: &mut Browser,
    what: &str,
    mut page: impl FnMut(&mut Browser) -> T,
    mut api: impl FnMut() -> T,
) -> T {
    let mut last = None;
    for _ in 0..20 {
        let (p, a) = (page(b), api());
        if p == a {
            return p;
        }
        last = Some((p, a));
        b.next_change();
    }
    panic!("{what}: the page and the API never agreed: {last:?}");
}

#[test]
fn every_dashboard_page_shows_what_the_api_says_live() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shots: PathBuf = repo.join("target/dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let mut devnet = long_devnet(&dir, "20", &["--resubmit"]);
    let api = devnet.api("alice");
    let base = format!("http://{api}");
    // An epoch closed with weights, and a challenge with a certified score.
    let challenge = wait_for_status(&api, "a closed epoch and a certified score", |s| {
        let epoch = s["epoch"].as_u64()?;
        if epoch < 2 {
            return None;
        }
        get(&api, &format!("/api/v1/epochs/{}/weights", epoch - 1))?;
        get(&api, "/api/v1/challenges")?
            .as_array()?
            .iter()
            .find(|c| !c["leader"].is_null())
            .map(|c| c["id"].as_str().unwrap().to_string())
    });

    let mut b = Browser::start();
    b.call("Page.enable", json!({}));

    // Overview: the height shown lies between the API's before and after, then moves on its
    // own (server-sent events, no reload).
    let before = get(&api, "/api/v1/status").unwrap()["height"]
        .as_u64()
        .unwrap();
    b.open(&format!("{base}/#overview"), "overview");
    let shown: u64 = text_of(&mut b, "height").parse().unwrap();
    let after = get(&api, "/api/v1/status").unwrap()["height"]
        .as_u64()
        .unwrap();
    assert!(
        before <= shown && shown <= after,
        "{before} ≤ {shown} ≤ {after}"
    );
    b.until(
        "the overview to follow new blocks",
        &format!(
            "Number(document.querySelector('[data-testid=\"height\"]').textContent) > {}",
            shown + 2
        ),
    );
    assert_eq!(text_of(&mut b, "partitioned"), "clear");
    b.screenshot(&shots.join("overview.png"));

    // Validators: the epoch's set, every key bound.
    b.open(&format!("{base}/#validators"), "validators");
    let api_validators: Vec<String> = get(&api, "/api/v1/validators")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["hotkey"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(api_validators.len(), 4);
    assert_eq!(
        attrs_of(&mut b, "validator-row", "data-hotkey"),
        api_validators
    );
    b.screenshot(&shots.join("validators.png"));

    // Challenges.
    b.open(&format!("{base}/#challenges"), "challenges");
    let ids: Vec<String> = get(&api, "/api/v1/challenges")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!ids.is_empty());
    assert_eq!(attrs_of(&mut b, "challenge-row", "data-id"), ids);
    b.screenshot(&shots.join("challenges.png"));

    // Leaderboard: the API's order.
    b.open(&format!("{base}/#leaderboard/{challenge}"), "leaderboard");
    let order = agree(
        &mut b,
        "the leaderboard's order",
        |b| attrs_of(b, "leaderboard-row", "data-miner"),
        || {
            get(&api, &format!("/api/v1/challenges/{challenge}/leaderboard"))
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["miner"].as_str().unwrap().to_string())
                .collect()
        },
    );
    assert!(!order.is_empty());
    b.screenshot(&shots.join("leaderboard.png"));

    // The leader's submission, opened from its row.
    let board = get(&api, &format!("/api/v1/challenges/{challenge}/leaderboard")).unwrap();
    let submission = board[0]["submission"].as_str().unwrap().to_string();
    b.open(&format!("{base}/#submission/{submission}"), "submission");
    let record = get(&api, &format!("/api/v1/submissions/{submission}")).unwrap();
    assert_eq!(text_of(&mut b, "status"), "certified");
    assert_eq!(record["status"], "certified");
    assert_eq!(json!(text_of(&mut b, "score")), record["score"]);
    b.screenshot(&shots.join("submission.png"));

    // Epochs: the newest closed epoch's vector, weight by weight.
    b.open(&format!("{base}/#epochs"), "epochs");
    let epoch: u64 = b
        .eval("Number(document.body.dataset.epoch)")
        .as_u64()
        .unwrap();
    let weights = get(&api, &format!("/api/v1/epochs/{epoch}/weights")).unwrap();
    let from_api: BTreeMap<String, String> = weights["uids"]
        .as_array()
        .unwrap()
        .iter()
        .zip(weights["weights"].as_array().unwrap())
        .map(|(u, w)| (u.to_string(), w.to_string()))
        .collect();
    let uids = attrs_of(&mut b, "weight-row", "data-uid");
    let ws = attrs_of(&mut b, "weight-row", "data-weight");
    let shown: BTreeMap<String, String> = uids.into_iter().zip(ws).collect();
    assert!(!shown.is_empty());
    assert_eq!(shown, from_api);
    b.screenshot(&shots.join("epochs.png"));

    // A phone's width: the overview still lays out (no horizontal scrolling of the page).
    b.viewport(390, 844, true);
    b.open(&format!("{base}/#overview"), "overview");
    let overflow = b.eval("document.documentElement.scrollWidth > window.innerWidth + 1");
    assert_eq!(
        overflow,
        json!(false),
        "the overview scrolls sideways on a phone"
    );
    b.screenshot(&shots.join("overview-phone.png"));
}
