//! Writes the data set (`assets/dataset.bin`, the challenge's asset 0) and `samples/` for seed
//! 0: a trained model, a weak one, and two invalid payloads.
//! Run: `cargo run --example make_samples --target x86_64-unknown-linux-gnu -p classifier`.

use classifier::{FEATURES, Model, TRAIN, accuracy, dataset, decode_dataset, encode_dataset};
use platform_challenge_sdk::borsh;

fn main() {
    // Train on the training split: the difference of class means is a good linear separator.
    let data = dataset(0);
    let mut mean = [[0i64; FEATURES]; 2];
    for p in &data[..TRAIN] {
        for f in 0..FEATURES {
            mean[p.label as usize][f] += i64::from(p.x[f]);
        }
    }
    let weights: [i32; FEATURES] =
        core::array::from_fn(|f| ((mean[1][f] - mean[0][f]) / TRAIN as i64) as i32);
    let trained = Model { weights, bias: 0 };
    let weak = Model {
        weights: [weights[0], 0, 0, 0],
        bias: 0,
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let bytes = encode_dataset(&data);
    assert_eq!(decode_dataset(&bytes).map(|d| d.len()), Some(data.len()));
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::write(root.join("assets/dataset.bin"), &bytes).unwrap();
    let dir = root.join("samples");
    std::fs::write(dir.join("good1.bin"), borsh::to_vec(&trained).unwrap()).unwrap();
    std::fs::write(dir.join("good2.bin"), borsh::to_vec(&weak).unwrap()).unwrap();
    std::fs::write(dir.join("invalid1.bin"), [1u8, 2, 3]).unwrap();
    let mut trailing = borsh::to_vec(&trained).unwrap();
    trailing.push(0);
    std::fs::write(dir.join("invalid2.bin"), trailing).unwrap();
    println!(
        "seed 0: trained accuracy {}, weak accuracy {}",
        accuracy(0, &trained),
        accuracy(0, &weak)
    );
}
