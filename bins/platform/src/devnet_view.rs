//! The devnet's live view on a terminal: one panel redrawn in place (validators, challenges,
//! the leaderboard, the newest epoch's weights, recent events, the dashboard's address).
//! When stdout is not a terminal the devnet prints plain lines instead (`node::watch`).

use std::collections::VecDeque;
use std::fmt::Write as _;

/// Events kept for the panel.
const EVENTS: usize = 5;

/// One validator's row.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub hotkey: String,
    pub api: String,
    pub height: u64,
    pub epoch: u64,
    pub view: u64,
    pub peers: usize,
    pub p99_ms: u64,
    pub submitted: Option<u64>,
    /// Whether it answered the last poll.
    pub up: bool,
}

/// What the panel shows besides the validators (read from the first validator's API).
#[derive(Clone, Debug, Default)]
pub struct Network {
    /// `(id, lifecycle, emission basis points)`.
    pub challenges: Vec<(String, String, u64)>,
    /// The first challenge with certified scores, and its top miners.
    pub leaderboard: Option<(String, Vec<Leader>)>,
    /// The newest closed epoch and its weights `(uid, weight)`.
    pub weights: Option<(u64, Vec<(u64, u64)>)>,
}

/// A leaderboard row: miner, UID (if registered), best score.
pub type Leader = (String, Option<u64>, String);

/// The panel's state between redraws.
#[derive(Debug, Default)]
pub struct Panel {
    events: VecDeque<String>,
    drawn: bool,
}

fn short(key: &str) -> String {
    if key.chars().count() > 14 {
        let head: String = key.chars().take(6).collect();
        let tail: String = key.chars().skip(key.chars().count() - 6).collect();
        format!("{head}…{tail}")
    } else {
        key.to_string()
    }
}

impl Panel {
    /// Keeps `msg` among the recent events shown.
    pub fn event(&mut self, msg: String) {
        if self.events.len() == EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(msg);
    }

    /// The panel's text (no terminal codes).
    pub fn text(&self, title: &str, rows: &[Row], net: &Network) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{title}   (Ctrl-C stops)");
        if let Some(first) = rows.first() {
            let _ = writeln!(out, "dashboard: {}/", first.api);
        }
        let _ = writeln!(
            out,
            "\n{:<15} {:>7} {:>5} {:>6} {:>5} {:>7} {:>7}  API",
            "VALIDATOR", "HEIGHT", "EPOCH", "VIEW", "PEERS", "P99 ms", "WEIGHTS"
        );
        for r in rows {
            let weights = r.submitted.map_or("-".to_string(), |e| format!("e{e}"));
            if r.up {
                let _ = writeln!(
                    out,
                    "{:<15} {:>7} {:>5} {:>6} {:>5} {:>7} {:>7}  {}",
                    short(&r.hotkey),
                    r.height,
                    r.epoch,
                    r.view,
                    r.peers,
                    r.p99_ms,
                    weights,
                    r.api
                );
            } else {
                let _ = writeln!(
                    out,
                    "{:<15} {:>7}  not answering            {}",
                    short(&r.hotkey),
                    r.height,
                    r.api
                );
            }
        }
        let challenges: Vec<String> = net
            .challenges
            .iter()
            .map(|(id, status, bps)| format!("{id} ({status}, {:.1} %)", *bps as f64 / 100.0))
            .collect();
        let _ = writeln!(
            out,
            "\nchallenges: {}",
            if challenges.is_empty() {
                "none yet".to_string()
            } else {
                challenges.join(", ")
            }
        );
        match &net.leaderboard {
            Some((id, top)) => {
                let _ = writeln!(out, "leaderboard ({id}):");
                for (i, (miner, uid, score)) in top.iter().enumerate() {
                    let uid = uid.map_or("-".to_string(), |u| u.to_string());
                    let _ = writeln!(out, "  {}. {} uid {uid:>3}  {score}", i + 1, short(miner));
                }
            }
            None => {
                let _ = writeln!(out, "leaderboard: no certified score yet");
            }
        }
        match &net.weights {
            Some((epoch, ws)) => {
                let sum: u64 = ws.iter().map(|w| w.1).sum::<u64>().max(1);
                let shares: Vec<String> = ws
                    .iter()
                    .map(|(u, w)| format!("{u}: {:.1} %", *w as f64 * 100.0 / sum as f64))
                    .collect();
                let _ = writeln!(out, "weights of epoch {epoch}: {}", shares.join("  "));
            }
            None => {
                let _ = writeln!(out, "weights: no epoch closed yet");
            }
        }
        if !self.events.is_empty() {
            let _ = writeln!(out, "\nrecent:");
            for e in &self.events {
                let _ = writeln!(out, "  {e}");
            }
        }
        out
    }

    /// Redraws the panel in place: home, each line cleared to its end, the rest of the screen
    /// cleared (the first draw clears the screen).
    pub fn draw(&mut self, text: &str) {
        use std::io::Write as _;
        let mut out = String::new();
        out.push_str(if self.drawn {
            "\x1b[H"
        } else {
            "\x1b[H\x1b[2J"
        });
        for line in text.lines() {
            out.push_str(line);
            out.push_str("\x1b[K\n");
        }
        out.push_str("\x1b[J");
        self.drawn = true;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_panel_shows_every_validator_the_leaders_and_the_weights() {
        let mut panel = Panel::default();
        for i in 0..7 {
            panel.event(format!("event {i}"));
        }
        let rows = vec![
            Row {
                hotkey: "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY".into(),
                api: "http://127.0.0.1:1".into(),
                height: 120,
                epoch: 3,
                view: 121,
                peers: 3,
                p99_ms: 90,
                submitted: Some(2),
                up: true,
            },
            Row {
                hotkey: "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty".into(),
                api: "http://127.0.0.1:2".into(),
                height: 100,
                ..Row::default()
            },
        ];
        let net = Network {
            challenges: vec![("tsp".into(), "active".into(), 6000)],
            leaderboard: Some((
                "tsp".into(),
                vec![("5FpjvVminer".into(), Some(4), "0.851938586".into())],
            )),
            weights: Some((2, vec![(0, 6554), (4, 58981)])),
        };
        let text = panel.text("devnet: 2 validators", &rows, &net);
        assert!(text.contains("dashboard: http://127.0.0.1:1/"), "{text}");
        assert!(text.contains("5Grwva…GKutQY"), "{text}");
        assert!(text.contains("e2"), "{text}");
        assert!(text.contains("not answering"), "{text}");
        assert!(text.contains("tsp (active, 60.0 %)"), "{text}");
        assert!(
            text.contains("1. 5FpjvVminer uid   4  0.851938586"),
            "{text}"
        );
        assert!(
            text.contains("weights of epoch 2: 0: 10.0 %  4: 90.0 %"),
            "{text}"
        );
        // Only the last five events.
        assert!(!text.contains("event 1") && text.contains("event 2") && text.contains("event 6"));
    }
}
