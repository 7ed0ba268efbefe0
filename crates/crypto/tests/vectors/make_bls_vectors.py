#!/usr/bin/env python3
"""Prints the BLS known answers of tests/golden.rs with an independent implementation:
py_ecc (PyPI), Ethereum's BLS12-381 library, whose G2ProofOfPossession is the same IETF
ciphersuite (min-pk, BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_) that blst implements.

    pip install py_ecc==8.0.0 && python3 make_bls_vectors.py
"""
from py_ecc.bls import G2ProofOfPossession as bls

sk = bls.KeyGen(bytes([7] * 32), b"platform/v1/bls")
print("GOLDEN_PK ", bls.SkToPk(sk).hex())
print("GOLDEN_SIG", bls.Sign(sk, b"platform golden").hex())
print("GOLDEN_POP", bls.PopProve(sk).hex())
