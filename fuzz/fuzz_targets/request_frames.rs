//! Request-response frames (hello, sync, blob, snapshot, certificates) as the codec reads them from a
//! stream: the first byte picks the protocol and whether it is a request or a response.
#![no_main]

use futures::executor::block_on;
use futures::io::Cursor;
use libfuzzer_sys::fuzz_target;
use libp2p::request_response::Codec as _;
use platform_network::wire::{Codec, Protocol};
use platform_primitives::NetUid;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let protocol = Protocol::ALL[usize::from(pick) % Protocol::ALL.len()];
    let stream = protocol.stream_protocol(NetUid(1));
    let mut io = Cursor::new(frame.to_vec());
    if pick & 0x80 == 0 {
        let _ = block_on(Codec.read_request(&stream, &mut io));
    } else {
        let _ = block_on(Codec.read_response(&stream, &mut io));
    }
});
