#!/usr/bin/env python3
"""Generates sr25519_vectors.json with an implementation independent of ours: the Python
bindings `py-sr25519-bindings` and `py-bip39-bindings` (PyPI), which the Bittensor Python
stack uses through `substrate-interface`.

    pip install py-sr25519-bindings==0.2.4 py-bip39-bindings==0.3.0
    python3 make_sr25519_vectors.py > sr25519_vectors.json

Each vector gives a secret URI, the public key those libraries derive for it, and a message
signed by them (context `substrate`). The Rust test checks that we derive the same key and
that the signature verifies.
"""
import json

import bip39
import sr25519

DEV_PHRASE = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"
PHRASES = [
    DEV_PHRASE,
    "legal winner thank year wave sausage worth useful legal winner thank yellow",
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
]


def chain_code(junction: str) -> bytes:
    """Substrate's DeriveJunction chain code: u64 LE for numbers, else SCALE(str), padded."""
    if junction.isdigit():
        enc = int(junction).to_bytes(8, "little")
    else:
        raw = junction.encode()
        assert len(raw) < 64
        enc = bytes([len(raw) << 2]) + raw
    assert len(enc) <= 32
    return enc.ljust(32, b"\0")


def vector(suri, keypair, message):
    public, _secret = keypair
    sig = sr25519.sign(keypair, message)
    assert sr25519.verify(sig, message, public)
    return {"suri": suri, "public_key": public.hex(), "message": message.hex(), "signature": sig.hex()}


out = []
for i, phrase in enumerate(PHRASES):
    for password in ["", "pw"]:
        mini = bip39.bip39_to_mini_secret(phrase, password)
        kp = sr25519.pair_from_seed(bytes(mini))
        suri = phrase if not password else f"{phrase}///{password}"
        out.append(vector(suri, kp, f"message {i} {password}".encode()))

root = sr25519.pair_from_seed(bytes(bip39.bip39_to_mini_secret(DEV_PHRASE, "")))
for name in ["Alice", "Bob", "Dave", "Miner1", "7"]:
    # As substrate-interface does: the chain code rides in the tuple, the message is empty.
    _cc, pub, sec = sr25519.hard_derive_keypair((chain_code(name), root[0], root[1]), b"")
    out.append(vector(f"//{name}", (pub, sec), f"hello {name}".encode()))

seed = bytes(range(32))
out.append(vector("0x" + seed.hex(), sr25519.pair_from_seed(seed), b"from a raw seed"))
print(json.dumps(out, indent=1))
