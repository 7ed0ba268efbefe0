//! What every fuzz target checks besides "no panic": a decoded value encodes back to exactly
//! the bytes it came from. Borsh is canonical, and the decoders refuse trailing bytes, so any
//! other outcome means two encodings of one value (a malleability bug) or a lossy decoder.

use borsh::BorshSerialize;

/// Panics unless `value` (decoded from `data`) encodes back to `data`.
pub fn round_trip<T: BorshSerialize>(what: &str, data: &[u8], value: &T) {
    let again = borsh::to_vec(value).expect("encoding into memory cannot fail");
    assert!(
        again == data,
        "{what}: {} bytes decoded, but the value encodes to {} other bytes",
        data.len(),
        again.len()
    );
}
