#!/usr/bin/env python3
"""Generates keyfiles/ : encrypted Bittensor key files written by the reference implementation,
the Python package `bittensor-wallet` (the library `btcli` uses to write wallets).

    python3 -m venv /tmp/btw && /tmp/btw/bin/pip install bittensor-wallet==4.1.1
    /tmp/btw/bin/python make_keyfile_vectors.py

It writes, under keyfiles/:
- a wallet `w1` with a hotkey `h1` and a coldkey, both encrypted ($NACL: argon2i + secretbox)
  with the password in keyfiles.json, as `btcli wallet regen-*  --use-password` writes them;
- `keyfiles.json`: for each file, its path, the password, the address its secret derives, and
  the value `btcli` would put in the file's BT_PW_… environment variable (the password,
  obfuscated with the variable's name, base64).

Each run encrypts with a fresh nonce, so the files differ between runs; the Rust test reads
whatever is checked in and needs only that it decrypts to the recorded address.
"""
import json
import os
import shutil

from bittensor_wallet import Keyfile, Keypair

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "keyfiles")
PASSWORD = "correct horse battery staple"
HOT = "legal winner thank year wave sausage worth useful legal winner thank yellow"
COLD = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"


def write(rel: str, mnemonic: str) -> dict:
    path = os.path.join(OUT, rel)
    key = Keypair.create_from_mnemonic(mnemonic)
    kf = Keyfile(path, name=rel)
    kf.set_keypair(key, encrypt=True, overwrite=True, password=PASSWORD)
    os.chmod(path, 0o600)
    data = open(path, "rb").read()
    assert data.startswith(b"$NACL"), data[:8]
    return {
        "file": rel,
        "password": PASSWORD,
        "ss58": key.ss58_address,
        "env_var": kf.env_var_name(),
        "env_value": kf.save_password_to_env(PASSWORD),
    }


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    files = [write("w1/hotkeys/h1", HOT), write("w1/coldkey", COLD)]
    # `env_var` is named after the absolute path the file had when generated; the test checks
    # that name against ours for that path, and that the value decodes to the password.
    for f in files:
        f["generated_at"] = os.path.join(OUT, f["file"])
    with open(os.path.join(OUT, "keyfiles.json"), "w") as fh:
        json.dump({"generator": "bittensor-wallet 4.1.1", "files": files}, fh, indent=2)
        fh.write("\n")


if __name__ == "__main__":
    main()
