//! Simulation campaigns: the engine under Byzantine stake, partitions and crashes, checked by
//! the independent oracle. A failing seed is printed and replays exactly.

use platform_consensus::ValidatorIndex;
use platform_consensus::sim::byzantine::Behavior;
use platform_consensus::sim::keys::{BlsKeys, MacKeys};
use platform_consensus::sim::network::Partition;
use platform_consensus::sim::rng::Rng;
use platform_consensus::sim::{Outcome, Partitions, Scenario, Terminal, run};

fn assert_clean(o: &Outcome, what: &str) {
    assert!(
        o.safety_violation.is_none(),
        "{what} seed {}: {}",
        o.seed,
        o.safety_violation.as_ref().unwrap()
    );
    assert!(
        o.liveness_failure.is_none(),
        "{what} seed {}: {}",
        o.seed,
        o.liveness_failure.as_ref().unwrap()
    );
}

/// A random scenario for `seed`: 4 to 10 validators with random stakes, Byzantine validators
/// holding as much stake as possible while staying under 1/3, random behaviors, and (for most
/// seeds) random partitions and crash/restart.
fn mixed(seed: u64) -> Scenario {
    let mut rng = Rng::new(seed.wrapping_mul(7919));
    let n = [4, 5, 7, 10][rng.below(4) as usize];
    let stakes: Vec<u64> = (0..n).map(|_| rng.range(50, 500)).collect();
    let total: u64 = stakes.iter().sum();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut byzantine = Vec::new();
    let mut byz_stake = 0;
    for i in order {
        if 3 * (byz_stake + stakes[i]) < total {
            byz_stake += stakes[i];
            let behavior = Behavior::ALL[rng.below(Behavior::ALL.len() as u64) as usize];
            byzantine.push((i as ValidatorIndex, behavior));
        }
    }
    let mut s = Scenario::honest(n, 5);
    s.stakes = stakes;
    s.byzantine = byzantine;
    s.partitions = if rng.chance(600) {
        Partitions::Random
    } else {
        Partitions::None
    };
    s.crashes = rng.chance(600);
    s
}

#[test]
fn campaign_of_2000_seeds_has_no_violation() {
    let mut finalized = 0;
    let mut with_byzantine = 0;
    for seed in 0..2_000 {
        let s = mixed(seed);
        let keys = MacKeys::new(seed, s.stakes.len());
        let o = run(&s, &keys, seed);
        assert_clean(&o, "mixed campaign");
        finalized += o.finalized_blocks;
        with_byzantine += u64::from(!s.byzantine.is_empty());
    }
    assert!(finalized >= 2_000 * 5);
    assert!(
        with_byzantine > 1_500,
        "most seeds carry Byzantine stake: {with_byzantine}"
    );
}

/// The same mixed campaign (Byzantine stake under a third, partitions, crashes right after
/// persisting) with finalize votes sent to 1 to 3 collectors instead of broadcast: no safety
/// violation, every honest validator reaches the target.
#[test]
fn campaign_with_collectors_has_no_violation() {
    for seed in 0..1_000 {
        let mut s = mixed(seed);
        s.collectors = 1 + (seed % 3) as u16;
        let o = run(&s, &MacKeys::new(seed, s.stakes.len()), seed);
        assert_clean(&o, "mixed campaign with collectors");
    }
}

/// Collectors take the finalize votes off the all-to-all path: at 16 honest validators the
/// messages per finalized block fall from about 2·n² to about n² plus 2·3·n.
#[test]
fn collectors_send_fewer_messages_per_decision() {
    let n = 16;
    let per_block = |collectors: u16| {
        let mut s = Scenario::honest(n, 10);
        s.collectors = collectors;
        s.network.loss_per_mille = 0;
        let o = run(&s, &MacKeys::new(3, n), 3);
        assert_clean(&o, "honest");
        o.messages as f64 / o.finalized_blocks as f64
    };
    let (broadcast, collected) = (per_block(0), per_block(3));
    let n2 = (n * n) as f64;
    assert!(broadcast > 1.8 * n2, "{broadcast}");
    assert!(collected < 1.5 * n2, "{collected}");
}

#[test]
fn each_behavior_alone_just_under_a_third() {
    for behavior in Behavior::ALL {
        let (mut evidence, mut penalties) = (0, 0);
        for seed in 0..40 {
            // 7 equal validators: 2 Byzantine is 28.6% of stake.
            let mut s = Scenario::honest(7, 8);
            s.byzantine = vec![(1, behavior), (4, behavior)];
            let o = run(&s, &MacKeys::new(seed, 7), seed);
            assert_clean(&o, behavior.name());
            evidence += o.evidence;
            penalties += o.penalties;
        }
        if behavior == Behavior::Equivocate {
            assert!(evidence > 0, "equivocation is caught as evidence");
        }
        if behavior == Behavior::Forge {
            assert!(penalties > 0, "forgers are penalized");
        }
    }
}

#[test]
fn a_seed_replays_exactly() {
    let s = mixed(42);
    let keys = MacKeys::new(42, s.stakes.len());
    let a = run(&s, &keys, 42);
    let b = run(&s, &keys, 42);
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_eq!(
        (a.events, a.messages, a.virtual_ms),
        (b.events, b.messages, b.virtual_ms)
    );
    assert_ne!(run(&s, &keys, 43).fingerprint, a.fingerprint);
}

fn split(actors: usize, group_b: &[usize], until_ms: u64) -> Partitions {
    let mut groups = vec![0u8; actors];
    group_b.iter().for_each(|&a| groups[a] = 1);
    Partitions::Fixed(vec![Partition {
        from_ms: 0,
        until_ms,
        groups,
    }])
}

/// The oracle is not vacuous: with equivocating stake above 1/3 (two of four validators run
/// twins, one in each half of a partition) both halves reach a quorum and finalize different
/// blocks, and the oracle reports it.
#[test]
fn equivocating_stake_above_a_third_breaks_safety_and_the_oracle_sees_it() {
    let mut s = Scenario::honest(4, 5);
    s.twins = vec![2, 3];
    // Actors 0..4 are validators 0..3; actors 4 and 5 are the twins of validators 2 and 3.
    s.partitions = split(6, &[1, 4, 5], u64::MAX / 2);
    s.liveness_bound_ms = 20_000;
    let mut violations = 0;
    for seed in 0..20 {
        let o = run(&s, &MacKeys::new(seed, 4), seed);
        if let Some(v) = &o.safety_violation {
            assert!(v.contains("SAFETY VIOLATION"), "{v}");
            violations += 1;
        }
    }
    assert!(violations >= 15, "the oracle found only {violations} of 20");
}

/// At exactly 1/3 the strict "more than 2/3" quorum still protects safety: neither half of the
/// partition has a quorum.
#[test]
fn exactly_a_third_cannot_break_safety() {
    let mut s = Scenario::honest(3, 3);
    s.twins = vec![2];
    s.partitions = split(4, &[1, 3], 30_000);
    for seed in 0..20 {
        let o = run(&s, &MacKeys::new(seed, 3), seed);
        assert_clean(&o, "one third twins");
    }
}

/// Twins at n = 4: one Byzantine validator runs two identities with one key, placed on opposite
/// sides of random partitions that come and go.
#[test]
fn twins_at_four_validators() {
    for seed in 0..300 {
        let mut rng = Rng::new(seed);
        let mut s = Scenario::honest(4, 6);
        s.twins = vec![3];
        let actors = 5;
        let windows = (0..rng.range(1, 3))
            .map(|i| {
                let from_ms = i * 4_000 + rng.range(0, 1_000);
                let mut groups: Vec<u8> = (0..actors).map(|_| rng.below(2) as u8).collect();
                groups[3] = 0; // validator 3 ...
                groups[4] = 1; // ... and its twin on opposite sides
                Partition {
                    from_ms,
                    until_ms: from_ms + rng.range(500, 3_500),
                    groups,
                }
            })
            .collect();
        s.partitions = Partitions::Fixed(windows);
        s.crashes = seed % 3 == 0;
        let o = run(&s, &MacKeys::new(seed, 4), seed);
        assert_clean(&o, "twins");
    }
}

#[test]
fn real_bls_certificates() {
    let mut s = Scenario::honest(4, 4);
    s.byzantine = vec![(2, Behavior::Forge)];
    let keys = BlsKeys::new(4);
    let o = run(&s, &keys, 7);
    assert_clean(&o, "bls");
    assert!(o.certificates_checked > 0);
    assert!(o.penalties > 0, "forged BLS votes are caught");
}

#[test]
fn larger_sets_and_unequal_stakes() {
    for (n, seed) in [(16usize, 1u64), (32, 2), (64, 3)] {
        let mut s = Scenario::honest(n, 3);
        s.stakes = (0..n as u64).map(|i| 10 + i * 7).collect();
        let o = run(&s, &MacKeys::new(seed, n), seed);
        assert_clean(&o, "large");
    }
}

/// A terminal block (an epoch's close) whose finalize votes are all lost.
fn terminal(seals: bool) -> Scenario {
    let mut s = Scenario::honest(4, 6);
    s.terminal = Some(Terminal { height: 6, seals });
    s.liveness_bound_ms = 60_000;
    s
}

#[test]
fn a_terminal_block_whose_finalize_votes_are_lost_is_finalized_through_a_seal() {
    for seed in 0..50 {
        let o = run(&terminal(true), &MacKeys::new(seed, 4), seed);
        assert_clean(&o, "terminal block with seals");
        // Height 6 has no finalization of its own: a seal above it finalized it.
        assert!(o.finalized_blocks >= 7, "seed {seed}: {o:?}");
    }
}

#[test]
fn without_seals_a_terminal_block_whose_finalize_votes_are_lost_is_never_finalized() {
    // Why seals exist: nothing may follow the terminal block, so nothing finalizes it.
    let o = run(&terminal(false), &MacKeys::new(1, 4), 1);
    assert!(o.safety_violation.is_none(), "{o:?}");
    let failure = o
        .liveness_failure
        .expect("the terminal block cannot be finalized");
    assert!(failure.contains("[5, 5, 5, 5]"), "{failure}");
}
