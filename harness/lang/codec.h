// codec.h — the binary form of the operation language, for fuzzers (summarised in docs/language.md §Binary form; this comment is authoritative).
//
// Theory of operation
// -------------------
// A fuzzer hands us arbitrary bytes; the decoder turns *every* byte string into a valid
// program (total), gives a byte string the same meaning in every release (stable), and
// spends most inputs on the corners where COW bugs live (biased): a few pages at a few
// bases so that ops collide, page-table boundaries, the ends of user space, wrapping
// ranges, huge sparse sizes, unaligned offsets.
//
// Names are the hard part of totality. Whether t3 or c1 exists depends on earlier
// results (a vm_read binds its handle only on success), which only the executor knows, so
// the decoder does not keep its own liveness: `Decoder::next` takes the caller's
// NameState and chooses names that pass `NameState::check` in it. An encoded slot that
// is live (or, for a name being created, free) is used as is; otherwise the next such
// slot cyclically (slot+1, slot+2, ... mod 16). An op whose kind needs a name that cannot
// be had (vm_write with no live handle, `task` with all 16 tasks live) is skipped: only
// its kind byte is consumed, and the next byte is read as the next kind byte. Every loop
// consumes a byte, so decoding always ends. Running out of bytes inside an op ends the
// program there (no partial op).
//
// The encoder is the decoder's inverse on canonical programs within the codec's ranges:
// for a program p that is valid under some run (each op passes check when it runs), and
// whose transfers are at most kMaxCodecTransfer bytes and config is representable,
// decoding encode_program(p) with the same liveness yields exactly p.ops (without their
// assertions: binary programs carry no Expect). Values outside those ranges are folded as
// the decoder would fold them. Every value has an exact escape (raw 8-byte form), so any
// address, size and offset round-trips.
//
// FORMATS (stable: never change the meaning of a byte string; add a version)
// --------------------------------------------------------------------------------------
//   byte 0   version. A value V in 2..kFormatVersion selects format V; every other value
//            (1, 0, and anything above: totality) decodes as format 1; Decoder::version()
//            reports the byte. Format V knows the ops of ops.def whose format column is at
//            most V (ops_in_format(V): they are numbered 0..n-1, rows being appended): 1
//            knows ops 0..20, 2 adds `device` (21), 3 `collect` (22), 4 the concurrency
//            ops `hold`, `reply`, `run` and `quiesce` (23..26), 5 `supply`, `hold_init`,
//            `ready` and `silent` (27..30), 6 `lock` and `ack` (32, 33; a kind byte whose
//            number has no row, 31, is skipped like an op whose names cannot be
//            chosen; 31 stays empty in format 6, a new op goes in format 7). Everything else is the same in every
//            format, so a kind byte means the same op in each format that knows it. The
//            encoder writes the lowest version that can say the program (the highest
//            format column of its ops), so older programs keep their bytes. A new op is a
//            row with the next format: the one meaning that changes is that of inputs
//            whose first byte happened to be the new version (no checked-in input starts
//            with a byte above 1 unless it needs that format).
//   byte 1   frames = kFramesTable[b % 16]      (64..4096, biased small: memory pressure)
//   byte 2   cpus   = 1 + b % 4
//   byte 3   tlb    = 1 + b % 64                (entries per CPU TLB)
//   byte 4   cache  = b % 9                     (object cache bound)
//            A missing config byte leaves SystemConfig{}'s default.
//   then ops until the input ends: a kind byte K, kind = K % ops_in_format(version) (the
//   modulus is fixed per format so that adding an op cannot change what an old input
//   means), then the kind's arguments: one per slot of its row in ops.def, in order, each
//   in its slot's form (harness/lang/op_table.h names the form of every slot:
//   TASK, NEWTASK, TASKCPU, COPY, NEWCOPY, OBJ, NEWOBJ, ADDR, SIZE, XFER, OFFSET, DATA,
//   PROTB, INHB, OBJF, DEVF, MAPF, PAGEOUT, and the object's and device's SIZE below).
//   Argument encodings (u16/u24/u64: little-endian):
//     TASK, COPY, OBJ       1 byte; slot = b & 15, mapped to the next LIVE slot cyclically.
//     NEWTASK, NEWCOPY, NEWOBJ  1 byte; slot = b & 15, mapped to the next FREE slot.
//     TASKCPU               1 byte; task slot = b & 15 as TASK; cpu = (b >> 4) % cpus.
//     ADDR                  mode byte m, by m & 15:
//                           0-8 (and 14-15 where ANY is not allowed): window: page
//                               byte p; addr = kWindowBases[m >> 4] + (p & 15) * 4096,
//                               plus (u16 & 0xfff) read next when (p >> 4) >= 13.
//                           9-10  far: byte f; addr = kFarBases[f & 15] + (f >> 4) * 4096
//                           11-12 edge: byte e; addr = kEdgeAddrs[e & 15]
//                           13    raw: u64
//                           14-15 ANY (allocate and map only): anywhere, addr 0
//     SIZE                  mode byte s, by s & 15:
//                           0-9   (1 + ((s >> 4) & 7)) pages
//                           10-11 byte n: n bytes (0..255)
//                           12    byte n: (n + 1) pages
//                           13-14 byte e: kEdgeSizes[e & 15]
//                           15    raw: u64
//     XFER                  SIZE, then min(size, kMaxCodecTransfer)   (read, file)
//     object's SIZE         SIZE, then min(size, 2^64 - 4096) (its rounding must not wrap)
//     OFFSET                byte o: o < 0xe0: (o & 15) pages; 0xe0..0xfe: o - 0xdf bytes
//                           (1..31, unaligned); 0xff: raw u64
//     LEN                   byte l: l < 0xc0: 1 + (l & 63); 0xc0..0xef: (1 + (l - 0xc0) % 16)
//                           pages; 0xf0..0xff: u24 % (kMaxCodecTransfer + 1)
//     DATA                  form byte d, by d & 7: 0-2 fill: value byte, LEN;
//                           3-5 pat: seed byte, LEN; 6 hex: LEN, then LEN bytes;
//                           7 "text": LEN, then LEN bytes. An object's DATA is cut to the
//                           object's rounded size.
//     PROTB                 byte: prot = b & 7, max flag = (b >> 3) & 1
//     INHB                  byte: inheritance = b % 3 (share, copy, none)
//     device's SIZE         SIZE, then size % (kMaxDeviceSize + 1) when above kMaxDeviceSize;
//                           its DATA is cut to the device's rounded size
//     DEVF                  byte: has DATA = b & 1
//     OBJF                  byte: strategy = (b & 3) % 3 (none, call, delay),
//                           persist = (b >> 2) & 1, has DATA = (b >> 3) & 1
//     MAPF                  byte: share = b & 1, has MAPO = (b >> 1) & 1
//     MAPO                  byte: prot = b & 7, max = (b >> 3) & 7, inherit = (b >> 6) % 3
//     PAGEOUT               byte: 0xff: all; 0xfe: count = u64; else count = b
//     CHOICE                byte c: `~c` (run, reply: the c-th, modulo, of what exists then;
//                           binary has no exact form, so an exact N encodes as ~(N mod 256):
//                           the same request for a usable `reply m N`, not in general the
//                           same thread for `run N`, whose N is a thread id)
//     HOWB                  byte: b % 3 (supply, unavailable, error)
//     LOCKB                 byte: 1 + b % 3 = should_return | should_flush << 1 (return, flush, both)
//   An op whose names cannot be chosen is skipped after its kind byte (see above).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "harness/lang/names.h"
#include "harness/lang/op_table.h"
#include "harness/lang/program.h"
#include "vmfuzz/vocab.h"

namespace vmfuzz {

/// How many ops a format version knows: the rows of ops.def whose format is at most v
/// (rows are appended, so they are ops.def numbers 0..n-1). This is the kind-byte modulus.
inline constexpr unsigned ops_in_format(unsigned v) {
  unsigned n = 0;  // the highest number of a row of format <= v, + 1 (a number without a row is skipped)
#define VMFUZZ_OP(E, TEXT, NUM, FORMAT, ...) n = (FORMAT) <= v && (NUM) + 1 > n ? (NUM) + 1 : n;
#include "vmfuzz/ops.def"
#undef VMFUZZ_OP
  return n;
}
/// The newest format this build reads and writes: the highest format of an ops.def row.
inline constexpr uint8_t kFormatVersion = [] {
  unsigned v = 1;
  while (ops_in_format(v) < kOpKindCount) v++;
  return static_cast<uint8_t>(v);
}();
/// The op kinds format version 1 knows (ops.def numbers 0..20): the kind-byte modulus.
inline constexpr unsigned kVersion1OpKinds = ops_in_format(1);
/// The op kinds format version 2 knows (ops.def numbers 0..21, adding `device`).
inline constexpr unsigned kVersion2OpKinds = ops_in_format(2);
// What the formats mean never changes: these counts are part of them.
static_assert(kVersion1OpKinds == 21, "codec: format 1 knows exactly ops 0..20 (ops.def)");
static_assert(kVersion2OpKinds == 22, "codec: format 2 knows exactly ops 0..21 (ops.def)");
static_assert(ops_in_format(3) == 23, "codec: format 3 knows exactly ops 0..22 (ops.def)");
static_assert(ops_in_format(4) == 27, "codec: format 4 knows exactly ops 0..26 (ops.def)");
static_assert(ops_in_format(5) == 31, "codec: format 5 knows exactly ops 0..30 (ops.def)");
static_assert(ops_in_format(6) == 34, "codec: format 6 knows ops up to 33 (ops.def; 31 has no row, for good)");
/// Largest materialized DATA and largest read/file size the decoder produces (64 KiB).
inline constexpr uint64_t kMaxCodecTransfer = 64 * 1024;

/// The tables the format refers to (part of the format: never change an entry).
extern const unsigned kFramesTable[16];
extern const uint64_t kWindowBases[16];
extern const uint64_t kFarBases[16];
extern const uint64_t kEdgeAddrs[16];
extern const uint64_t kEdgeSizes[16];

class Decoder {
 public:
  /// Reads the version byte and the config bytes; the ops are read by next().
  explicit Decoder(std::span<const uint8_t> bytes);

  /// The machine configuration the input asks for.
  const SystemConfig& config() const { return config_; }
  /// The input's version byte (1 for an empty input). 2 decodes as format 2, any other
  /// value as format 1.
  uint8_t version() const { return version_; }
  /// Bytes consumed so far.
  size_t offset() const { return pos_; }

  /// Purpose:    Decode the next op, choosing names that are usable in `names` now.
  /// Conditions: entry: `names` reflects every op returned so far (the caller applied
  ///             their results); names.cpus() == config().cpus.
  ///             exit:  on true, names.check(*out) is nullopt and *out is canonical
  ///             (canonical_op(*out) == *out) with no assertions.
  ///             never: fails or loops on any input; allocates more than the input's
  ///             size plus kMaxCodecTransfer per op.
  /// Results:    true and *out; false at the end of the input (for good: later calls
  ///             return false too).
  bool next(const NameState& names, Op* out);

 private:
  bool byte(uint8_t* b);
  bool u64(uint64_t* v, unsigned nbytes);
  bool addr(uint64_t* a, bool* anywhere, bool allow_any);
  bool size(uint64_t* s);
  bool offset(uint64_t* o);
  bool length(uint64_t* len);
  bool data(DataSpec* d);
  bool slot(Slot s, const NameState& names, Op* op);

  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  bool ended_ = false;
  uint8_t version_ = 1;
  SystemConfig config_;
};

/// The result the caller assumes for an op when decoding without running it.
using ResultRule = std::function<kern_return_t(const Op&)>;

/// Purpose:    Decode a whole input without executing it, following names as if each op
///             returned rule(op) (every op KERN_SUCCESS when rule is empty).
/// Results:    Program with has_config = true, the decoded config, ops, lines all 0.
Program decode_program(std::span<const uint8_t> bytes, const ResultRule& rule = {});

/// Purpose:    The binary form of p: version byte (the highest format of its ops, at least 1),
///             p.config, then p.ops (assertions dropped).
/// Conditions: exact inverse of decoding (with the liveness p was valid under) when p is
///             canonical, its transfers are
///             <= kMaxCodecTransfer and its config is
///             representable (frames in kFramesTable, cpus 1..4, tlb 1..64, cache 0..8);
///             otherwise values are folded to the nearest representable ones.
std::vector<uint8_t> encode_program(const Program& p);

}  // namespace vmfuzz
