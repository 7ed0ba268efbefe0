#!/usr/bin/env python3
"""Known-answer vectors for the CRv2 commit hash, computed with the Python `bittensor` package
(bittensor.utils.weight_utils.generate_weight_hash), independently of Platform's Rust code.

    pip install "bittensor>=9,<10"
    python3 make_crv2_vectors.py > crv2.json
"""
import json

from bittensor.utils.weight_utils import generate_weight_hash
from importlib.metadata import version

ALICE = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
BOB = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"

cases = [
    (ALICE, 1, [0, 1, 2], [65535, 32768, 0], [1, 2, 3, 4, 5, 6, 7, 8], 0),
    (BOB, 1, [4, 7], [100, 300], [1, 2, 3], 0),
    (ALICE, 64, [], [], [], 2),
    (BOB, 65535, [5], [65535], [65535, 0], 18446744073709551615),
    # 70 uids: the vector length needs a two-byte compact prefix.
    (ALICE, 3, list(range(70)), [(i * 937) % 65536 for i in range(70)], [42] * 9, 1000),
]
out = {"bittensor": version("bittensor"), "vectors": []}
for address, netuid, uids, values, salt, version_key in cases:
    out["vectors"].append(
        {
            "hotkey": address,
            "netuid": netuid,
            "uids": uids,
            "values": values,
            "salt": salt,
            "version_key": version_key,
            "hash": generate_weight_hash(address, netuid, uids, values, version_key, salt),
        }
    )
print(json.dumps(out, indent=1))
