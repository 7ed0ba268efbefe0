#!/usr/bin/env python3
"""Writes the payloads the shipped scenarios submit, deterministically.

Run from this directory: python3 make_payloads.py

- tsp-*.bin: Borsh Vec<u16> tours of the published tsp instance, derived from the sample
  nearest-neighbour tour (challenges/tsp/samples/good1.bin) by reversing segments, which
  makes them longer (worse) by different amounts, plus the identity tour.
- classifier-*.bin: Borsh Model { weights: [i32; 4], bias: i32 } around the sample model
  (challenges/classifier/samples/good1.bin), perturbed by different amounts.
"""
import random
import struct

rng = random.Random(7)

with open("../challenges/tsp/samples/good1.bin", "rb") as f:
    raw = f.read()
n = struct.unpack("<I", raw[:4])[0]
nn = list(struct.unpack("<%dH" % n, raw[4:]))


def tour_bytes(t):
    return struct.pack("<I", len(t)) + struct.pack("<%dH" % len(t), *t)


def damaged(t, moves):
    t = list(t)
    for _ in range(moves):
        i, j = sorted(rng.sample(range(1, len(t)), 2))
        t[i:j] = reversed(t[i:j])
    return t


tours = {
    "tsp-a.bin": nn,
    "tsp-b.bin": damaged(nn, 1),
    "tsp-c.bin": damaged(nn, 3),
    "tsp-d.bin": damaged(nn, 8),
    "tsp-e.bin": list(range(n)),
    "tsp-f.bin": damaged(nn, 2),
}
for name, t in tours.items():
    with open("payloads/" + name, "wb") as f:
        f.write(tour_bytes(t))

with open("../challenges/classifier/samples/good1.bin", "rb") as f:
    base = struct.unpack("<5i", f.read())

models = {
    "classifier-a.bin": base,
    "classifier-b.bin": (base[0] + 60, base[1] - 40, base[2] + 50, base[3] - 30, 20),
    "classifier-c.bin": (base[0] + 200, base[1] - 150, base[2] + 160, base[3] + 100, -80),
    "classifier-d.bin": (300, 100, 120, -200, 40),
    "classifier-e.bin": (-5, -455, 320, -27, 0),
    "classifier-f.bin": (base[0] + 10, base[1] + 20, base[2] - 10, base[3], 5),
}
for name, m in models.items():
    with open("payloads/" + name, "wb") as f:
        f.write(struct.pack("<5i", *m))
print("wrote", len(tours) + len(models), "payloads")
