#!/usr/bin/env python3
"""Cross-implementation vectors for timelocked weight commits (commit-reveal version 4),
computed with the Python package `bittensor-drand`, the reference implementation, independently
of Platform's Rust code. Run it once per reference version; each run fills its own section of
tlock.json and keeps the others:

    python3 -m venv /tmp/d13 && /tmp/d13/bin/pip install bittensor-drand==1.3.0
    python3 -m venv /tmp/d20 && /tmp/d20/bin/pip install bittensor-drand==2.0.0
    /tmp/d13/bin/python make_tlock_vectors.py   # from the repository root
    /tmp/d20/bin/python make_tlock_vectors.py

It needs libfaketime (Debian package `faketime`): the reference reads the wall clock to pick a
reveal round, so the script re-runs itself with the clock frozen at chosen instants. That makes
the reveal rounds exact, and lets the reference encrypt commits to quicknet round 1000, whose
signature is public, so the tests can decrypt them.

Sections per version:
- `reveal_rounds`: the reveal round the reference picks for a grid of chain states and instants.
- `reference_commits`: commits the reference encrypted to round 1000, with the payload fields.
- `ours_decrypted_by_reference`: ciphertexts from Platform's encryption with fixed randomness
  (`cargo run -p platform-crypto --example timelock_vectors`), with what the reference decrypted.
"""
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tlock.json")
GENESIS = 1692803367
ROUND_1000_SIGNATURE = (
    "b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125"
    "e342b73a8dd2bacbe47e4b6b63ed5e39"
)
# //Alice's sr25519 public key.
ALICE = bytes.fromhex("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")

if os.environ.get("LD_PRELOAD") != LIBFAKETIME:
    if not os.path.exists(LIBFAKETIME):
        sys.exit(f"{LIBFAKETIME} is missing: apt-get install faketime")
    env = dict(os.environ, LD_PRELOAD=LIBFAKETIME, FAKETIME_NO_CACHE="1", TZ="UTC",
               FAKETIME="2024-01-01 00:00:00")
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

import bittensor_drand as bd  # noqa: E402

VERSION = version("bittensor-drand")
V2 = hasattr(bd, "get_encrypted_commit_v2")


def freeze(unix_secs):
    """Stops the clock at `unix_secs` (libfaketime's absolute, frozen form)."""
    stamp = datetime.fromtimestamp(unix_secs, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    os.environ["FAKETIME"] = stamp
    assert int(time.time()) == unix_secs, "libfaketime did not take the frozen time"


def commit(case, now):
    freeze(now)
    if V2:
        return bd.get_encrypted_commit_v2(
            case["uids"], case["values"], case["version_key"], case["last_epoch_block"],
            case["pending_epoch_at"], case["subnet_epoch_index"], case["tempo"],
            case["blocks_since_last_step"], case["current_block"],
            case["reveal_period_epochs"], case["block_time_ms"] / 1000, case["hotkey_bytes"],
        )
    return bd.get_encrypted_commit(
        case["uids"], case["values"], case["version_key"], case["tempo"],
        case["current_block"], case["netuid"], case["reveal_period_epochs"],
        case["block_time_ms"] / 1000, case["hotkey_bytes"],
    )


def state_grid():
    """Chain states: for the v1 formula tempo, block, netuid; for v2 the stateful schedule."""
    for tempo in (10, 360):
        for current_block in (0, 7, 360, 361, 4_000_000):
            for netuid in (0, 1, 64):
                for period in (0, 1, 3):
                    for block_time_ms in (12_000, 250):
                        case = {"tempo": tempo, "current_block": current_block, "netuid": netuid,
                                "reveal_period_epochs": period, "block_time_ms": block_time_ms}
                        if V2:
                            # A plausible stateful epoch record for that block.
                            last = current_block - current_block % (tempo + 1)
                            case.update(last_epoch_block=last, pending_epoch_at=0,
                                        subnet_epoch_index=current_block // (tempo + 1),
                                        blocks_since_last_step=current_block - last)
                        yield case
    if V2:
        # Owner-triggered epochs pending, and a step counter that disagrees with the block.
        for pending in (0, 500, 1_200):
            for since in (0, 5, 400):
                yield {"tempo": 360, "current_block": 1_000, "netuid": 1,
                       "reveal_period_epochs": 1, "block_time_ms": 12_000,
                       "last_epoch_block": 722, "pending_epoch_at": pending,
                       "subnet_epoch_index": 2, "blocks_since_last_step": since}


def payload_fields():
    return {"hotkey": ALICE.hex(), "uids": [0, 3, 70], "values": [65535, 1, 30000],
            "version_key": 4242}


def reveal_rounds():
    out = []
    for i, case in enumerate(state_grid()):
        now = 1_750_000_000 + i * 37
        case.update(payload_fields())
        case["hotkey_bytes"] = ALICE
        _, round_ = commit(case, now)
        row = {k: v for k, v in case.items() if k not in ("hotkey_bytes",) + tuple(payload_fields())}
        row.update(now_secs=now, reveal_round=round_)
        out.append(row)
    return out


def reference_commits():
    """Commits to round 1000: the clock is set so that the reveal target lands on it."""
    out = []
    shapes = [
        ([0, 3, 70], [65535, 1, 30000], 4242),
        ([], [], 0),
        (list(range(70)), [(i * 937) % 65536 for i in range(70)], 18446744073709551615),
    ]
    for uids, values, version_key in shapes:
        case = {"tempo": 360, "current_block": 359, "netuid": 0, "reveal_period_epochs": 0,
                "block_time_ms": 12_000, "uids": uids, "values": values,
                "version_key": version_key, "hotkey_bytes": ALICE,
                "last_epoch_block": 359, "pending_epoch_at": 0, "subnet_epoch_index": 1,
                "blocks_since_last_step": 0}
        # Find an instant whose reveal round is 1000 (the target is at most a few blocks away).
        for back in range(0, 100_000, 3):
            now = GENESIS + 3000 - back
            ct, round_ = commit(case, now)
            if round_ == 1000:
                break
            if round_ < 1000:
                sys.exit("could not aim a commit at round 1000")
        out.append({"round": 1000, "now_secs": now, "hotkey": ALICE.hex(), "uids": uids,
                    "values": values, "version_key": version_key, "commit": ct.hex()})
    return out


def compact(n):
    if n < 1 << 6:
        return bytes([n << 2])
    if n < 1 << 14:
        return ((n << 2) | 1).to_bytes(2, "little")
    return ((n << 2) | 2).to_bytes(4, "little")


def ours_decrypted_by_reference():
    ours = json.loads(subprocess.check_output(
        ["cargo", "run", "-q", "-p", "platform-crypto", "--example", "timelock_vectors"]))
    out = []
    for case in ours:
        ct = bytes.fromhex(case["ciphertext"])
        # decrypt_with_signature reads the SCALE `UserData { encrypted_data, reveal_round }`
        # that the package's own encrypt() writes around the ciphertext.
        wrapped = compact(len(ct)) + ct + case["round"].to_bytes(8, "little")
        case["decrypted_by_reference"] = bd.decrypt_with_signature(wrapped, ROUND_1000_SIGNATURE).hex()
        assert case["decrypted_by_reference"] == case["plaintext"], "the reference disagrees"
        out.append(case)
    return out


existing = json.load(open(OUT)) if os.path.exists(OUT) else {}
existing.setdefault("round_1000_signature", ROUND_1000_SIGNATURE)
existing.setdefault("bittensor_drand", {})
existing["bittensor_drand"][VERSION] = {
    "reveal_round_model": "stateful (get_encrypted_commit_v2)" if V2 else "spec 393 (get_encrypted_commit)",
    "reveal_rounds": reveal_rounds(),
    "reference_commits": reference_commits(),
    "ours_decrypted_by_reference": ours_decrypted_by_reference(),
}
with open(OUT, "w") as f:
    json.dump(existing, f, indent=1)
    f.write("\n")
print(f"wrote {OUT}: bittensor-drand {VERSION}")
