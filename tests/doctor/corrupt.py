#!/usr/bin/env python3
"""corrupt.py OUTDIR FILE...: write corrupt variants of small ELF files for
the doctor's robustness test (deterministic: seeded). Each variant is made
executable. Also writes elf32: a hand-made minimal ELF32 i386 program with
a PT_INTERP and a dynamic section (this machine has no -m32 toolchain)."""
import os
import random
import struct
import sys

INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]


def elf32():
    """ELF32 LSB i386 ET_EXEC: PT_INTERP, PT_LOAD (whole file), PT_DYNAMIC
    with DT_NEEDED libc.so.6, DT_STRTAB, DT_STRSZ."""
    base = 0x08048000
    interp = b"/lib/ld-linux.so.2\0"
    strtab = b"\0libc.so.6\0"
    ehsz, phsz, nph = 52, 32, 3
    off_interp = ehsz + phsz * nph
    off_str = off_interp + len(interp)
    off_dyn = (off_str + len(strtab) + 3) & ~3
    dyn = struct.pack("<8I", 1, 1, 5, base + off_str, 10, len(strtab), 0, 0)
    size = off_dyn + len(dyn)
    eh = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    eh += struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, base + size, ehsz, 0, 0, ehsz, phsz, nph, 40, 0, 0)
    ph = struct.pack("<8I", 3, off_interp, base + off_interp, base + off_interp, len(interp), len(interp), 4, 1)
    ph += struct.pack("<8I", 1, 0, base, base, size, size, 5, 0x1000)
    ph += struct.pack("<8I", 2, off_dyn, base + off_dyn, base + off_dyn, len(dyn), len(dyn), 6, 4)
    out = bytearray(eh + ph + interp + strtab)
    out += bytes(off_dyn - len(out)) + dyn
    return bytes(out)


def variants(data, rnd):
    n = len(data)
    for cut in list(range(0, min(n, 80))) + sorted(rnd.sample(range(80, n), min(12, max(0, n - 80)))):
        yield data[:cut]
    for _ in range(40):  # random byte flips anywhere, a few at a time
        b = bytearray(data)
        for _ in range(rnd.randint(1, 8)):
            i = rnd.randrange(n)
            b[i] = rnd.randrange(256)
        yield bytes(b)
    for _ in range(40):  # "interesting" 16/32/64-bit words in the headers and tables
        b = bytearray(data)
        for _ in range(rnd.randint(1, 3)):
            width = rnd.choice([2, 4, 8])
            lim = min(n, 4096) if rnd.random() < 0.7 else n
            i = rnd.randrange(max(1, lim - width))
            v = rnd.choice(INTERESTING + [n, n - 1, n + 1]) & ((1 << (8 * width)) - 1)
            b[i:i + width] = v.to_bytes(width, "little")
        yield bytes(b)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "elf32"), "wb") as f:
        f.write(elf32())
    os.chmod(os.path.join(out, "elf32"), 0o755)
    rnd = random.Random(20261122)
    k = 0
    inputs = [os.path.join(out, "elf32")] + sys.argv[2:]
    for path in inputs:
        with open(path, "rb") as f:
            data = f.read()
        for v in variants(data, rnd):
            p = os.path.join(out, "m%04d" % k)
            with open(p, "wb") as f:
                f.write(v)
            os.chmod(p, 0o755)
            k += 1
    print(k)


if __name__ == "__main__":
    main()
