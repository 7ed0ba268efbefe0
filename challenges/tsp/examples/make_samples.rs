//! Writes `samples/` for seed 0: two good tours and two invalid ones.
//! Run: `cargo run --example make_samples --target x86_64-unknown-linux-gnu -p tsp`.

use platform_challenge_sdk::borsh;
use tsp::Instance;

fn main() {
    let inst = Instance::generate(0);
    let n = inst.len();
    // Nearest-neighbour tour: a good tour.
    let mut tour = vec![0u16];
    let mut used = vec![false; n];
    used[0] = true;
    while tour.len() < n {
        let last = *tour.last().unwrap() as usize;
        let next = (0..n)
            .filter(|&c| !used[c])
            .min_by_key(|&c| inst.distance(last, c))
            .unwrap();
        used[next] = true;
        tour.push(next as u16);
    }
    let identity: Vec<u16> = (0..n as u16).collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    std::fs::write(dir.join("good1.bin"), borsh::to_vec(&tour).unwrap()).unwrap();
    std::fs::write(dir.join("good2.bin"), borsh::to_vec(&identity).unwrap()).unwrap();
    std::fs::write(
        dir.join("invalid1.bin"),
        borsh::to_vec(&identity[..n - 1].to_vec()).unwrap(),
    )
    .unwrap();
    let mut repeated = identity.clone();
    repeated[5] = 4;
    std::fs::write(dir.join("invalid2.bin"), borsh::to_vec(&repeated).unwrap()).unwrap();
    println!(
        "seed 0: {n} cities; nearest-neighbour length {}, identity length {}",
        inst.tour_length(&tour),
        inst.tour_length(&identity)
    );
}
