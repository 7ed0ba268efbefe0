//! Gossip in: what the network delivers once its ingress has checked it, block
//! announcements, and this validator's own key binding. Input this node cannot use is
//! dropped and counted (`crate::error`), never fatal.

use super::*;

impl Driver {
    /// A validator connected (or reconnected) and proved its hotkey. If nothing finalized
    /// for a view timeout, the network may be waiting for what this validator holds: repeat
    /// its votes and certificates now (`Input::Resend`), not at its next timeout, which after
    /// a long partition is backed off to many times the base.
    async fn on_validator_connected(&mut self) -> Result<()> {
        if self.consensus.me.is_none() || self.since_applied() < self.view_timeout {
            return Ok(());
        }
        crate::metrics::events().resends_on_connect.inc();
        let effects = self.engine().handle(Input::Resend);
        self.perform(effects).await
    }

    /// Handles one event from the network. Input the network's ingress let through but this
    /// node cannot use is [`NodeError::Dropped`]; only this node's own failures are fatal.
    pub(super) async fn on_network(&mut self, ev: NetEvent) -> Result<(), NodeError> {
        if let NetEvent::PeerBound {
            validator: true, ..
        } = ev
        {
            return Ok(self.on_validator_connected().await?);
        }
        let NetEvent::Gossip {
            topic,
            envelope,
            from,
        } = ev
        else {
            return Ok(());
        };
        match topic {
            Topic::Consensus => {
                // Any consensus message that passed the network's checks shows its author
                // is alive and reachable.
                self.heard.heard(envelope.author, Instant::now());
                let message: Message<BlsSignature> = decode(
                    "consensus message",
                    &envelope.payload,
                    platform_consensus::types::MAX_MESSAGE_BYTES,
                )
                .map_err(|_| NodeError::dropped("consensus", "malformed"))?;
                let epoch = self.epoch();
                match message.epoch() {
                    Some(e) if e > epoch => {
                        // The network has moved on: hold next-epoch messages for when we
                        // get there, and fetch the blocks that take us there.
                        if e.0 == epoch.0 + 1 {
                            if self.early.len() == MAX_EARLY_MESSAGES {
                                self.early.pop_front();
                            }
                            self.early.push_back((envelope.author, message));
                        }
                        self.catch_up();
                        return Ok(());
                    }
                    Some(e) if e < epoch => return Ok(()),
                    _ => {}
                }
                let Some(from) = self
                    .consensus
                    .validators
                    .iter()
                    .position(|h| *h == envelope.author)
                else {
                    return Ok(());
                };
                tracing::trace!(
                    from,
                    view = message.view().map(|v| v.0),
                    what = match &message {
                        Message::Vote(v) => format!("{:?} vote", v.kind),
                        Message::Certificate(c) => format!("{:?} certificate", c.kind),
                        Message::Fetch(_) => "fetch".into(),
                        Message::FetchView(_) => "fetch view".into(),
                    },
                    "consensus message"
                );
                let effects = self.engine().handle(Input::Message {
                    from: from as ValidatorIndex,
                    message,
                });
                Ok(self.perform(effects).await?)
            }
            Topic::Announce if self.ignore_announces => Ok(()),
            Topic::Announce => {
                let a =
                    decode::<Announcement>("block announcement", &envelope.payload, ANNOUNCE_BYTES)
                        .map_err(|_| NodeError::dropped("announce", "malformed"))?;
                match self.accept_announcement(&a, &envelope.author) {
                    Ok(()) => {}
                    Err("stale_announcement") => return Ok(()),
                    Err(reason) => {
                        tracing::debug!(view = a.view.0, reason, "refused a block announcement");
                        let _ = self
                            .net
                            .report_validator(envelope.author, "announce", reason)
                            .await;
                        return Ok(());
                    }
                }
                if !self.blocks.contains_key(&a.header) {
                    let net = self.net.clone();
                    let tx = self.internal_tx.clone();
                    let author = envelope.author;
                    let dir = self.dir.clone();
                    tokio::spawn(async move {
                        // Held in memory only until it decodes to the announced leader's block
                        // for that view; only then is it stored (and served to peers).
                        match net.fetch_announced_blob(a.blob, author, Some(from)).await {
                            Ok(bytes) => match Block::decode(&bytes) {
                                Ok(block)
                                    if block.header.hash() == a.header
                                        && block.header.proposer == author
                                        && block.header.view == a.view =>
                                {
                                    match net.store_blob(bytes).await {
                                        Ok(blob) => super::blocks::remember_unfinalized(
                                            dir,
                                            block.header.height.0,
                                            a.header,
                                            blob,
                                        ),
                                        Err(e) => {
                                            tracing::warn!("storing block {}: {e}", a.header)
                                        }
                                    }
                                    let _ = tx.send(Internal::Block(Box::new(block))).await;
                                }
                                _ => {
                                    tracing::warn!("announced block {} did not match", a.header);
                                    let _ = net
                                        .report_validator(author, "announce", "invalid_proposal")
                                        .await;
                                }
                            },
                            Err(e) => tracing::warn!("fetching block {}: {e}", a.header),
                        }
                    });
                }
                Ok(())
            }
            Topic::Submissions => {
                let tx = Tx::decode(&envelope.payload)
                    .map_err(|_| NodeError::dropped("transaction", "malformed"))?;
                let pool = self.pool.clone();
                tokio::task::spawn_blocking(move || {
                    let result = match pool.admit(tx) {
                        Ok(_) => "admitted",
                        Err(e) => {
                            tracing::debug!("gossiped transaction not admitted: {e}");
                            match e {
                                crate::mempool::AdmitError::Mempool(_) => "full",
                                crate::mempool::AdmitError::Rejected(_) => "rejected",
                            }
                        }
                    };
                    crate::metrics::events().offered("gossip", result);
                });
                Ok(())
            }
            Topic::Attestations => {
                let a = Evaluator::decode(&envelope.payload)
                    .ok_or(NodeError::dropped("attestation", "malformed"))?;
                let evaluator = self.evaluator.clone();
                tokio::spawn(async move { evaluator.collect(a).await });
                Ok(())
            }
        }
    }

    /// Whether to fetch the block an announcement names: it must come from the leader of a
    /// view of this epoch near this node's own, and be the first for that view. The error is
    /// the reason counted (`stale_announcement` is counted nowhere: a slow network delivers
    /// those honestly).
    pub(super) fn accept_announcement(
        &mut self,
        a: &Announcement,
        author: &Hotkey,
    ) -> Result<(), &'static str> {
        let current = self.consensus.engine.view().0;
        if a.epoch != self.epoch()
            || a.view.0 + ANNOUNCE_WINDOW < current
            || a.view.0 > current + ANNOUNCE_WINDOW
        {
            return Err("stale_announcement");
        }
        let leader = self.consensus.validators[self.consensus.engine.leader(a.view) as usize];
        if leader != *author {
            return Err("not_leader");
        }
        self.announced
            .retain(|(e, v), _| *e == a.epoch && v.0 + ANNOUNCE_WINDOW >= current);
        match self.announced.get(&(a.epoch, a.view)) {
            Some(header) if *header == a.header => Err("stale_announcement"),
            Some(_) => Err("duplicate_announcement"),
            None => {
                self.announced.insert((a.epoch, a.view), a.header);
                Ok(())
            }
        }
    }

    /// A validator with a permit on chain whose keys the state has not bound (it joined after
    /// genesis) sends `BindKeys` — its BLS key, proof of possession and peer id, signed by its
    /// hotkey — through the mempool and gossip; it joins consensus from the first epoch after
    /// the binding is final.
    pub(super) fn bind_keys_if_needed(&mut self) {
        let me = self.key.hotkey();
        let needed = {
            let state = self.pool.state();
            state.bound_keys(&me).is_none()
                && state
                    .current_epoch()
                    .metagraph
                    .iter()
                    .any(|n| n.hotkey == me && n.validator_permit)
        };
        if !needed {
            self.bind_sent = None;
            return;
        }
        self.bind_sent = Some(Instant::now());
        let tx = match crate::genesis::binding(&self.key, self.netuid) {
            Ok(b) => Tx::BindKeys(b),
            Err(e) => {
                tracing::warn!("cannot bind this validator's keys: {e:#}");
                return;
            }
        };
        let (pool, net, round) = (self.pool.clone(), self.net.clone(), self.finalized_height());
        tokio::spawn(async move {
            let admitted = {
                let (tx, net) = (tx.clone(), net.clone());
                tokio::task::spawn_blocking(move || pool.admit_and_publish(&net, tx, round)).await
            };
            match admitted {
                Ok(Ok(_)) => tracing::info!("binding this validator's keys (BindKeys sent)"),
                // Gossiped again while pending here: peers that were still in the previous
                // epoch refused it from a validator they did not know yet.
                Ok(Err(crate::mempool::AdmitError::Mempool(
                    crate::mempool::MempoolError::Duplicate,
                ))) => crate::mempool::publish_tx(&net, &tx, round).await,
                Ok(Err(e)) => tracing::warn!("BindKeys not admitted: {e}"),
                Err(e) => tracing::warn!("BindKeys: {e}"),
            }
        });
    }
}
