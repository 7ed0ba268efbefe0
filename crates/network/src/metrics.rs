//! Counters of what the network accepted and rejected, by channel (topic or protocol) and
//! reason, readable at any time without going through the network task.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Counters, shared between the network task and readers.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<MetricsSnapshot>,
}

/// A copy of the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MetricsSnapshot {
    /// Accepted messages and requests by channel.
    pub accepted: BTreeMap<String, u64>,
    /// Rejections by (channel, reason).
    #[serde(serialize_with = "pairs")]
    pub rejected: BTreeMap<(String, String), u64>,
    /// Bytes of gossip messages received, by topic.
    pub received_bytes: BTreeMap<String, u64>,
    /// Peers banned since start.
    pub bans: u64,
    /// Accepted messages dropped because the consumer was not keeping up.
    pub dropped_backpressure: u64,
    /// sr25519 signatures verified on ingress (gossip envelopes and peer bindings): the
    /// expensive stage, which only validator peers' in-window messages reach.
    pub signature_checks: u64,
    /// Gossip messages gossipsub could not queue for a peer (its send queue was full).
    pub gossip_send_failures: u64,
    /// Links closed and redialed because their gossip queue stopped draining.
    pub stuck_links: u64,
    /// Consensus messages sent to one validator over the direct protocol.
    pub direct_sent: u64,
    /// The DHT provider store, as of the network task's last tick.
    pub dht: crate::ProviderStats,
}

fn pairs<S: serde::Serializer>(
    m: &BTreeMap<(String, String), u64>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(m.len()))?;
    for ((channel, reason), count) in m {
        seq.serialize_element(&(channel, reason, count))?;
    }
    seq.end()
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut MetricsSnapshot)) {
        f(&mut self.inner.lock().expect("metrics lock poisoned"));
    }

    /// Counts an accepted message or request.
    pub fn accepted(&self, channel: &str) {
        self.with(|m| *m.accepted.entry(channel.to_string()).or_default() += 1);
    }

    /// Counts a rejection.
    pub fn rejected(&self, channel: &str, reason: &str) {
        self.with(|m| {
            *m.rejected
                .entry((channel.to_string(), reason.to_string()))
                .or_default() += 1
        });
    }

    /// Counts `bytes` of a gossip message received on `topic`.
    pub fn received(&self, topic: &str, bytes: usize) {
        self.with(|m| *m.received_bytes.entry(topic.to_string()).or_default() += bytes as u64);
    }

    /// Counts a ban.
    pub fn banned(&self) {
        self.with(|m| m.bans += 1);
    }

    /// Counts a signature verification.
    pub fn signature_checked(&self) {
        self.with(|m| m.signature_checks += 1);
    }

    /// Counts a message dropped under back-pressure.
    pub fn dropped(&self) {
        self.with(|m| m.dropped_backpressure += 1);
    }

    /// Counts gossip messages that could not be queued for a peer.
    pub fn gossip_send_failed(&self, n: u64) {
        self.with(|m| m.gossip_send_failures += n);
    }

    /// Counts a consensus message sent to one validator.
    pub fn direct_sent(&self) {
        self.with(|m| m.direct_sent += 1);
    }

    /// Counts a stuck link closed and redialed.
    pub fn stuck_link(&self) {
        self.with(|m| m.stuck_links += 1);
    }

    /// Records the provider store's figures.
    pub fn set_dht(&self, stats: crate::ProviderStats) {
        self.with(|m| m.dht = stats);
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.inner.lock().expect("metrics lock poisoned").clone()
    }

    /// How many rejections with this reason, over all channels.
    pub fn rejections(&self, reason: &str) -> u64 {
        self.snapshot()
            .rejected
            .iter()
            .filter(|((_, r), _)| r == reason)
            .map(|(_, n)| n)
            .sum()
    }

    /// The counters in Prometheus text format.
    pub fn render_prometheus(&self) -> String {
        let m = self.snapshot();
        let mut out = String::new();
        out.push_str("# TYPE platform_network_accepted_total counter\n");
        for (channel, n) in &m.accepted {
            let _ = writeln!(
                out,
                "platform_network_accepted_total{{channel=\"{channel}\"}} {n}"
            );
        }
        out.push_str("# TYPE platform_network_rejected_total counter\n");
        for ((channel, reason), n) in &m.rejected {
            let _ = writeln!(
                out,
                "platform_network_rejected_total{{channel=\"{channel}\",reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# TYPE platform_network_bans_total counter\nplatform_network_bans_total {}",
            m.bans
        );
        let _ = writeln!(
            out,
            "# TYPE platform_network_dropped_total counter\nplatform_network_dropped_total {}",
            m.dropped_backpressure
        );
        let _ = writeln!(
            out,
            "# TYPE platform_network_signature_checks_total counter
             platform_network_signature_checks_total {}",
            m.signature_checks
        );
        let _ = writeln!(
            out,
            "# TYPE platform_network_gossip_send_failures_total counter\n\
             platform_network_gossip_send_failures_total {}\n\
             # TYPE platform_network_stuck_links_total counter\n\
             platform_network_stuck_links_total {}",
            m.gossip_send_failures, m.stuck_links
        );
        let d = m.dht;
        let _ = writeln!(
            out,
            "# TYPE platform_dht_provided_keys gauge\nplatform_dht_provided_keys {}\n\
             # TYPE platform_dht_provider_records gauge\nplatform_dht_provider_records {}\n\
             # TYPE platform_dht_evicted_total counter\n\
             platform_dht_evicted_total{{whose=\"own\"}} {}\n\
             platform_dht_evicted_total{{whose=\"remote\"}} {}\n\
             # TYPE platform_dht_expired_total counter\nplatform_dht_expired_total {}",
            d.provided, d.remote, d.evicted_own, d.evicted_remote, d.expired
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_as_prometheus_text() {
        let m = Metrics::default();
        m.accepted("consensus");
        m.rejected("consensus", "bad_signature");
        m.rejected("blob", "bad_signature");
        m.banned();
        assert_eq!(m.rejections("bad_signature"), 2);
        let text = m.render_prometheus();
        assert!(text.contains(
            "platform_network_rejected_total{channel=\"blob\",reason=\"bad_signature\"} 1"
        ));
        assert!(text.contains("platform_network_accepted_total{channel=\"consensus\"} 1"));
        assert!(text.contains("platform_network_bans_total 1"));
    }
}
