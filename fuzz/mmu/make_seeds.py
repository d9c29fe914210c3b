#!/usr/bin/env python3
"""Write the seed corpus of the mmu fuzz target into corpus/mmu/ (stdlib only).

Each seed is a meaningful step sequence in the encoding documented at the top of
mmu_fuzzer.cc. Usage: fuzz/mmu/make_seeds.py [OUTDIR]   (default: corpus/mmu beside fuzz/).
Existing files of the same name are overwritten; no other file is touched.
"""
import os
import sys

ENTER, REMOVE, PROTECT, PAGE_PROTECT, ACTIVATE, DEACTIVATE, CLEAR_MODIFY, \
    CLEAR_REFERENCE, COLLECT, LOAD, STORE, HOG, RECREATE, ZERO_PAGE, COPY_PAGE = range(15)
R, W, X = 1, 2, 4
RW = R | W
ALL_PAGES = 0  # n % 9 == 0: the whole user space


def enter(p, s, f, prot): return [ENTER, p, s, f, prot]
def remove(p, s, n): return [REMOVE, p, s, n]
def protect(p, s, n, prot): return [PROTECT, p, s, n, prot]
def page_protect(f, prot): return [PAGE_PROTECT, f, prot]
def activate(p, cpu): return [ACTIVATE, p, cpu]
def deactivate(cpu): return [DEACTIVATE, cpu]
def clear_modify(f): return [CLEAR_MODIFY, f]
def clear_reference(f): return [CLEAR_REFERENCE, f]
def collect(p, drop): return [COLLECT, p, 1 if drop else 0]
def hog(take): return [HOG, 127 if take else 0]  # 127: take up to 63 frames
def recreate(p): return [RECREATE, p]
def zero_page(f): return [ZERO_PAGE, f]
def copy_page(a, b): return [COPY_PAGE, a, b]


def length_byte(n):
    """The smallest length byte whose decoded length 1 + b*b/10 is >= n."""
    for b in range(256):
        if 1 + b * b // 10 >= n:
            return b
    return 255


def load(cpu, s, off, n): return [LOAD, cpu, s, off & 0xff, off >> 8, length_byte(n)]
def store(cpu, s, off, n, seed=0x41): return [STORE, cpu, s, off & 0xff, off >> 8, length_byte(n), seed]


SEEDS = {
    # What does a mapped page hold, and does a store come back?
    "basic": enter(0, 0, 0, RW) + activate(0, 0) + store(0, 0, 0x10, 16) + load(0, 0, 0, 64),
    # A store across two adjacent mapped pages, read back on another CPU.
    "cross_page": enter(0, 0, 0, RW) + enter(0, 1, 1, RW) + activate(0, 0) + activate(0, 1)
    + store(0, 0, 0xff0, 100) + load(1, 0, 0xf00, 600),
    # A store that runs off the end of the mapping stops at the first unmapped byte.
    "cross_into_hole": enter(1, 0, 2, RW) + activate(1, 2) + store(2, 0, 0xf80, 4000) + load(2, 0, 0xf00, 4000),
    # Read-only pages, then protect and page_protect reduce rights under live TLBs.
    "protection": enter(0, 2, 3, R) + enter(0, 3, 4, RW) + activate(0, 0) + store(0, 2, 0, 8)
    + store(0, 3, 0, 8) + load(0, 3, 0, 8) + protect(0, 3, 1, R) + store(0, 3, 0, 8)
    + enter(0, 3, 4, RW) + store(0, 3, 0, 8) + page_protect(4, R | X) + store(0, 3, 0, 8)
    + page_protect(4, 0) + load(0, 3, 0, 8),
    # One frame in two pmaps on two CPUs: page_protect must reach both TLBs.
    "shared_frame": enter(0, 0, 5, RW) + enter(1, 4, 5, RW) + activate(0, 0) + activate(1, 1)
    + store(0, 0, 0, 32, 1) + store(1, 4, 0, 32, 2) + load(0, 0, 0, 32) + page_protect(5, R)
    + store(0, 0, 0, 1) + store(1, 4, 0, 1) + load(1, 4, 0, 64),
    # Dirty and referenced bits: cleared while TLBs still hold the entries.
    "dirty_bits": enter(2, 5, 6, RW) + activate(2, 0) + activate(2, 1) + store(0, 5, 0, 4)
    + store(1, 5, 4, 4) + clear_modify(6) + store(1, 5, 8, 4) + clear_modify(6) + load(0, 5, 0, 4)
    + store(0, 5, 12, 4) + clear_modify(6) + load(0, 5, 0, 4) + store(0, 5, 0, 4) + clear_reference(6) + load(1, 5, 0, 4) + store(0, 5, 0, 4) + remove(2, 5, 1) + clear_reference(6),
    # Collect drops every mapping (Mach) or only empty tables; pages are entered again.
    "collect": enter(0, 0, 0, RW) + enter(0, 2, 1, RW) + enter(0, 3, 2, RW) + enter(0, 4, 3, RW)
    + enter(0, 5, 4, RW) + enter(0, 6, 5, RW) + activate(0, 0) + store(0, 0, 0, 4) + store(0, 6, 0, 4)
    + collect(0, True) + load(0, 0, 0, 4) + enter(0, 0, 0, RW) + enter(0, 4, 3, R)
    + remove(0, 4, 1) + collect(0, False) + load(0, 0, 0, 4) + load(0, 4, 0, 4),
    # Memory runs out: pmap_enter must refuse without changing anything.
    "shortage": enter(0, 0, 0, RW) + hog(True) + enter(0, 4, 1, RW) + enter(1, 5, 1, RW)
    + enter(0, 1, 1, RW) + activate(0, 0) + load(0, 1, 0, 8) + recreate(2) + hog(False)
    + enter(0, 4, 1, RW) + recreate(2) + enter(2, 3, 2, RW),
    # A pmap destroyed while active on two CPUs is switched away first, then rebuilt.
    "recreate": enter(1, 3, 7, RW) + activate(1, 0) + activate(1, 2) + store(2, 3, 0, 10)
    + recreate(1) + load(0, 3, 0, 10) + enter(1, 3, 7, R) + activate(1, 0) + load(0, 3, 0, 10),
    # A mapping replaced by another frame while both CPUs cache the old one.
    "replace_frame": enter(0, 1, 0, RW) + activate(0, 0) + activate(0, 1) + load(0, 1, 0, 8)
    + load(1, 1, 0, 8) + enter(0, 1, 1, RW) + load(0, 1, 0, 8) + store(1, 1, 0, 8)
    + zero_page(0) + copy_page(1, 0) + enter(0, 1, 0, R) + load(1, 1, 0, 16),
    # The last user page: an access that runs past it faults at the end of user space.
    "top_of_user_space": enter(2, 6, 3, RW) + enter(2, 7, 4, RW) + activate(2, 1)
    + store(1, 6, 0x800, 6000) + load(1, 7, 0xff0, 64) + remove(2, 0, ALL_PAGES) + load(1, 6, 0, 8),
    # TLB pressure: five pages through a four-entry TLB, then a protect of everything.
    "tlb_pressure": enter(0, 0, 0, RW) + enter(0, 1, 1, RW) + enter(0, 2, 2, RW) + enter(0, 3, 3, RW)
    + enter(0, 4, 4, RW) + activate(0, 0) + load(0, 0, 0, 1) + load(0, 1, 0, 1) + load(0, 2, 0, 1)
    + load(0, 3, 0, 1) + load(0, 4, 0, 1) + store(0, 0, 0, 1) + protect(0, 0, ALL_PAGES, R)
    + store(0, 1, 0, 1) + store(0, 4, 0, 1) + deactivate(0) + load(0, 0, 0, 1),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "corpus", "mmu")
    os.makedirs(out, exist_ok=True)
    for name, steps in sorted(SEEDS.items()):
        assert all(0 <= b < 256 for b in steps), name
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(bytes(steps))
    print(f"wrote {len(SEEDS)} seeds to {os.path.normpath(out)}")


if __name__ == "__main__":
    main()
