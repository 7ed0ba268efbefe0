//! The few SCALE encodings Platform computes itself (the commit hash of CRv2). SCALE is used only
//! at the chain boundary; everything else in Platform is Borsh.

/// SCALE compact encoding of a length.
pub fn compact(n: u64, out: &mut Vec<u8>) {
    if n < 1 << 6 {
        out.push((n as u8) << 2);
    } else if n < 1 << 14 {
        out.extend(((n as u16) << 2 | 0b01).to_le_bytes());
    } else if n < 1 << 30 {
        out.extend(((n as u32) << 2 | 0b10).to_le_bytes());
    } else {
        let bytes = n.to_le_bytes();
        let len = 8 - (n.leading_zeros() / 8) as usize;
        out.push(((len - 4) as u8) << 2 | 0b11);
        out.extend(&bytes[..len]);
    }
}

/// SCALE `Vec<u16>`.
pub fn vec_u16(v: &[u16], out: &mut Vec<u8>) {
    compact(v.len() as u64, out);
    for x in v {
        out.extend(x.to_le_bytes());
    }
}

/// The CRv2 commit hash subtensor checks at reveal:
/// `blake2_256(SCALE(hotkey: AccountId32, netuid: u16, uids: Vec<u16>, values: Vec<u16>,
/// salt: Vec<u16>, version_key: u64))`.
pub fn commit_hash(
    hotkey: &[u8; 32],
    netuid: u16,
    uids: &[u16],
    values: &[u16],
    salt: &[u16],
    version_key: u64,
) -> [u8; 32] {
    use blake2::Digest;
    let mut data = Vec::with_capacity(32 + 2 + 4 * (uids.len() + salt.len()) + 8);
    data.extend(hotkey);
    data.extend(netuid.to_le_bytes());
    vec_u16(uids, &mut data);
    vec_u16(values, &mut data);
    vec_u16(salt, &mut data);
    data.extend(version_key.to_le_bytes());
    blake2::Blake2b::<blake2::digest::consts::U32>::digest(&data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_matches_the_scale_spec() {
        // Examples from the SCALE codec documentation.
        let enc = |n| {
            let mut v = Vec::new();
            compact(n, &mut v);
            hex::encode(v)
        };
        assert_eq!(enc(0), "00");
        assert_eq!(enc(1), "04");
        assert_eq!(enc(42), "a8");
        assert_eq!(enc(69), "1501");
        assert_eq!(enc(65535), "feff0300");
        assert_eq!(enc(100_000_000_000_000), "0b00407a10f35a");
    }
}
