//! Wiring several in-process nodes together on 127.0.0.1, for tests and `platform bench
//! network`.

use std::time::{Duration, Instant};

use crate::{Membership, NetError, Network};

/// Gives every node the validator set, connects each node to every earlier one, and waits until
/// each sees all the others as bound validators. Fails after `deadline`.
pub async fn connect_all(
    nodes: &[&Network],
    membership: &Membership,
    deadline: Duration,
) -> Result<(), NetError> {
    for n in nodes {
        n.set_membership(membership.clone()).await?;
    }
    for (i, n) in nodes.iter().enumerate() {
        for earlier in &nodes[..i] {
            n.dial(earlier.addr().clone()).await?;
        }
    }
    let end = Instant::now() + deadline;
    for n in nodes {
        while n.status().await?.connected_validators.len() < nodes.len() - 1 {
            if Instant::now() > end {
                return Err(NetError::Setup(format!(
                    "the {} nodes did not all bind to each other within {deadline:?}",
                    nodes.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}
