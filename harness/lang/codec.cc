// codec.cc — the binary decoder and encoder of the operation language (format: codec.h).
//
// Theory of operation
// -------------------
// The decoder is a cursor over the input with one rule: a read past the end sets `ended_`
// and every later read fails, so an op either decodes completely or the program ends.
// `next` reads a kind byte, checks that the names of the kind's row (op_table.h) can be
// chosen in the caller's NameState (else skips it), then reads one argument per slot of
// the row, each in its slot's binary form (codec.h). The encoder walks the same slots
// with a writer per form that picks the shortest bytes which decode to exactly the value,
// falling back to the raw 8-byte form.
#include "harness/lang/codec.h"

#include <algorithm>
#include <cassert>

#include "harness/lang/op_table.h"
#include "harness/lang/text.h"

namespace vmfuzz {

// The format's tables: never change an entry (stability); a new table means a new version.
const unsigned kFramesTable[16] = {256, 128, 64, 512, 1024, 96, 192, 4096,
                                   256, 128, 384, 2048, 160, 256, 512, 64};
const uint64_t kWindowBases[16] = {
    0x10000, 0x10000, 0x10000, 0x10000,  // the low window: where `any` allocations land
    0x14000, 0x14000, 0x18000, 0x18000,  // overlapping it, so ops collide
    0x20000, 0x100000,
    0x1f8000,         // straddles the 2 MiB boundary: two page tables
    0x3fff8000,       // straddles 1 GiB: two page directories
    0x7ffffff8000,    // straddles 512 GiB: two PML4 slots
    0x7fffffff7000,   // straddles the end of user space (0x7ffffffff000)
    0xff000, 0x30000};
const uint64_t kFarBases[16] = {
    0x200000, 0x400000, 0x40000000, 0x80000000, 0xc0000000, 0x100000000,
    0x8000000000, 0x10000000000, 0x100000000000, 0x400000000000, 0x7fffc0000000,
    0x7fffffe00000, 0x7ffffff00000, 0x10000000, 0x1000000, 0x7f8000000000};
const uint64_t kEdgeAddrs[16] = {
    0x0, 0x1, 0xfff, 0xf000, 0xffff, 0x10000, 0x7fffffffe000, 0x7ffffffff000,
    0x7fffffffffff, 0x800000000000, 0xffff800000000000, 0x8000000000000000,
    0xffffffffffffe000, 0xfffffffffffff000, 0xffffffffffffffff, 0x7ffffffffff0};
const uint64_t kEdgeSizes[16] = {
    0x0, 0x1, 0xfff, 0x1001, 0x10000, 0x200000, 0x201000, 0x40000000, 0x100000000,
    0x7fffffff0000, 0x800000000000, 0x8000000000000000, 0xfffffffffffff000,
    0xffffffffffffffff, 0xffffffffffff0000, 0x1000000000};

namespace {

constexpr uint64_t kMaxObjectSize = UINT64_MAX - (kPageSize - 1);  // = 2^64 - 4096

/// The next slot at or cyclically after `slot` whose bit in `mask` equals `want`;
/// false if there is none.
bool pick_slot(uint16_t mask, unsigned slot, bool want, uint8_t* out) {
  for (unsigned i = 0; i < kMaxNames; i++) {
    unsigned s = (slot + i) % kMaxNames;
    if (((mask >> s) & 1) == (want ? 1u : 0u)) {
      *out = static_cast<uint8_t>(s);
      return true;
    }
  }
  return false;
}

constexpr uint16_t kAllNames = 0xffff;

/// Whether the names `kind` needs can be chosen now: a live slot for every name that
/// must exist, a free one for every name to be made (its row's name slots).
bool names_available(OpKind kind, const NameState& n) {
  for (Slot s : op_spec(kind).slots()) {
    switch (s) {
      case Slot::Task:
      case Slot::EndTask:
      case Slot::TaskCpu:
        if (n.tasks_mask() == 0) return false;
        break;
      case Slot::NewTask:
      case Slot::ChildTask:
        if (n.tasks_mask() == kAllNames) return false;
        break;
      case Slot::Copy:
        if (n.copies_mask() == 0) return false;
        break;
      case Slot::NewCopy:
        if (n.copies_mask() == kAllNames) return false;
        break;
      case Slot::Object:
        if (n.objects_mask() == 0) return false;
        break;
      case Slot::NewObject:
        if (n.objects_mask() == kAllNames) return false;
        break;
      default:
        break;
    }
  }
  return true;
}

/// Cut `d` to at most `limit` bytes (an object's contents must fit the object).
void truncate_data(DataSpec* d, uint64_t limit) {
  if (d->size() <= limit) return;
  if (d->form == DataSpec::Form::Text || d->form == DataSpec::Form::Hex)
    d->bytes.resize(static_cast<size_t>(limit));
  else
    d->length = limit;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Decoder.

Decoder::Decoder(std::span<const uint8_t> bytes) : in_(bytes) {
  uint8_t b;
  if (!byte(&b)) return;
  version_ = b;
  if (byte(&b)) config_.frames = kFramesTable[b % 16];
  if (byte(&b)) config_.cpus = 1 + b % 4;
  if (byte(&b)) config_.tlb = 1 + b % 64;
  if (byte(&b)) config_.cache = b % 9;
  ended_ = false;  // a short header is not the end of a (then empty) op stream's decoding
}

bool Decoder::byte(uint8_t* b) {
  if (ended_ || pos_ >= in_.size()) {
    ended_ = true;
    return false;
  }
  *b = in_[pos_++];
  return true;
}

bool Decoder::u64(uint64_t* v, unsigned nbytes) {
  *v = 0;
  for (unsigned i = 0; i < nbytes; i++) {
    uint8_t b;
    if (!byte(&b)) return false;
    *v |= static_cast<uint64_t>(b) << (8 * i);
  }
  return true;
}

bool Decoder::addr(uint64_t* a, bool* anywhere, bool allow_any) {
  uint8_t m, b;
  if (!byte(&m)) return false;
  unsigned form = m & 15;
  if (form >= 14 && allow_any) {
    *anywhere = true;
    *a = 0;
    return true;
  }
  if (form == 9 || form == 10) {  // far: the other page-table slots at every level
    if (!byte(&b)) return false;
    *a = kFarBases[b & 15] + uint64_t{b} / 16 * kPageSize;
    return true;
  }
  if (form == 11 || form == 12) {  // edges of user space and of 2^64
    if (!byte(&b)) return false;
    *a = kEdgeAddrs[b & 15];
    return true;
  }
  if (form == 13) return u64(a, 8);
  // 0-8, and 14-15 where ANY is not allowed: the window
  if (!byte(&b)) return false;
  uint64_t off = 0;
  if ((b >> 4) >= 13) {
    if (!u64(&off, 2)) return false;
    off &= kPageSize - 1;
  }
  *a = kWindowBases[m >> 4] + uint64_t{b & 15u} * kPageSize + off;
  return true;
}

bool Decoder::size(uint64_t* s) {
  uint8_t m, b;
  if (!byte(&m)) return false;
  unsigned form = m & 15;
  if (form <= 9) {
    *s = (1 + ((m >> 4) & 7u)) * kPageSize;
    return true;
  }
  if (form == 15) return u64(s, 8);
  if (!byte(&b)) return false;
  if (form <= 11) *s = b;
  else if (form == 12) *s = (uint64_t{b} + 1) * kPageSize;
  else *s = kEdgeSizes[b & 15];
  return true;
}

bool Decoder::offset(uint64_t* o) {
  uint8_t b;
  if (!byte(&b)) return false;
  if (b < 0xe0) *o = uint64_t{b & 15u} * kPageSize;
  else if (b < 0xff) *o = b - 0xdfu;
  else return u64(o, 8);
  return true;
}

bool Decoder::length(uint64_t* len) {
  uint8_t l;
  if (!byte(&l)) return false;
  if (l < 0xc0) {
    *len = 1 + (l & 63u);
  } else if (l < 0xf0) {
    *len = (1 + (l - 0xc0u) % 16) * kPageSize;
  } else {
    if (!u64(len, 3)) return false;
    *len %= kMaxCodecTransfer + 1;
  }
  return true;
}

bool Decoder::data(DataSpec* d) {
  uint8_t f, v;
  *d = DataSpec{};
  if (!byte(&f)) return false;
  unsigned form = f & 7;
  if (form <= 5) {
    d->form = form <= 2 ? DataSpec::Form::Fill : DataSpec::Form::Pat;
    if (!byte(&v) || !length(&d->length)) return false;
    d->value = v;
    return true;
  }
  d->form = form == 7 ? DataSpec::Form::Text : DataSpec::Form::Hex;
  uint64_t len;
  if (!length(&len)) return false;
  if (len > in_.size() - pos_) {  // the literal runs past the input: the program ends
    ended_ = true;
    pos_ = in_.size();
    return false;
  }
  d->bytes.assign(in_.begin() + static_cast<ptrdiff_t>(pos_), in_.begin() + static_cast<ptrdiff_t>(pos_ + len));
  pos_ += static_cast<size_t>(len);
  return true;
}

/// Read one argument slot of op->kind (its names already known to be available).
bool Decoder::slot(Slot s, const NameState& names, Op* op) {
  uint8_t b;
  auto live = [&](uint16_t mask, uint8_t* out) { return byte(&b) && pick_slot(mask, b & 15, true, out); };
  auto fresh = [&](uint16_t mask, uint8_t* out) { return byte(&b) && pick_slot(mask, b & 15, false, out); };
  bool any_unused = false;
  switch (s) {
    case Slot::Task:
    case Slot::EndTask: return live(names.tasks_mask(), &op->task);
    case Slot::NewTask: return fresh(names.tasks_mask(), &op->task);
    case Slot::ChildTask: return fresh(names.tasks_mask(), &op->task2);
    case Slot::TaskCpu:
      if (!live(names.tasks_mask(), &op->task)) return false;
      op->cpu = static_cast<uint8_t>((b >> 4) % config_.cpus);
      return true;
    case Slot::Copy: return live(names.copies_mask(), &op->copy);
    case Slot::NewCopy: return fresh(names.copies_mask(), &op->copy);
    case Slot::Object: return live(names.objects_mask(), &op->object);
    case Slot::NewObject: return fresh(names.objects_mask(), &op->object);
    case Slot::AddrOrAny: return addr(&op->addr, &op->anywhere, true);
    case Slot::Addr:
    case Slot::SrcAddr: return addr(&op->addr, &any_unused, false);
    case Slot::DstAddr: return addr(&op->addr2, &any_unused, false);
    case Slot::Size: return size(&op->size);
    case Slot::Xfer:
      if (!size(&op->size)) return false;
      op->size = std::min(op->size, kMaxCodecTransfer);
      return true;
    case Slot::ObjSize:
      if (!size(&op->size)) return false;
      op->size = std::min(op->size, kMaxObjectSize);
      return true;
    case Slot::DevSize:
      if (!size(&op->size)) return false;
      if (op->size > kMaxDeviceSize) op->size %= kMaxDeviceSize + 1;
      return true;
    case Slot::Offset: return offset(&op->offset);
    case Slot::ProtMax:
      if (!byte(&b)) return false;
      op->prot = b & 7;
      op->set_max = (b >> 3) & 1;
      return true;
    case Slot::Inheritance:
      if (!byte(&b)) return false;
      op->inherit = static_cast<vm_inherit_t>(b % 3);
      return true;
    case Slot::Data: return data(&op->data);
    case Slot::ObjFlags:
    case Slot::DevData: {
      if (!byte(&b)) return false;
      bool has_data = b & 1;
      if (s == Slot::ObjFlags) {
        op->strategy = static_cast<CopyStrategy>((b & 3) % 3);
        op->persist = (b >> 2) & 1;
        has_data = (b >> 3) & 1;
      }
      if (!has_data) return true;
      if (!data(&op->data)) return false;
      truncate_data(&op->data, round_page(op->size));
      return true;
    }
    case Slot::MapMode:
      if (!byte(&b)) return false;
      op->share = b & 1;
      if ((b >> 1) & 1) {
        if (!byte(&b)) return false;
        op->prot = b & 7;
        op->max_prot = (b >> 3) & 7;
        op->inherit = static_cast<vm_inherit_t>((b >> 6) % 3);
      }
      return true;
    case Slot::PageCount:
      if (!byte(&b)) return false;
      if (b == 0xff) op->all = true;
      else if (b == 0xfe) return u64(&op->size, 8);
      else op->size = b;
      return true;
    case Slot::Choice:
      // Binary choices are always `~N`: any byte picks among what exists when the op runs.
      if (!byte(&b)) return false;
      op->choice = b;
      op->choice_exact = false;
      return true;
    case Slot::ReplyHow:
      if (!byte(&b)) return false;
      op->how = static_cast<ReplyHow>(b % 3);
      return true;
    case Slot::LockHow:  // LOCKB: 1 + b % 3 (return, flush, both)
      if (!byte(&b)) return false;
      op->lock = static_cast<uint8_t>(1 + b % 3);
      return true;
  }
  return false;
}

bool Decoder::next(const NameState& names, Op* out) {
  uint8_t k;
  while (byte(&k)) {
    Op op;
    // Version bytes 2..kFormatVersion select that format; every other value is format 1.
    unsigned format = version_ >= 2 && version_ <= kFormatVersion ? version_ : 1;
    if (!op_kind_exists(k % ops_in_format(format))) continue;  // a number no row has: skipped
    op.kind = static_cast<OpKind>(k % ops_in_format(format));
    if (!names_available(op.kind, names)) continue;  // skipped: the next byte is a kind byte
    bool complete = true;
    for (Slot sl : op_spec(op.kind).slots())
      if (!(complete = slot(sl, names, &op))) break;
    if (!complete) break;  // ran out of bytes inside the op
    assert(!names.check(op) && "Decoder::next: decoded an op that is not usable input");
    assert(canonical_op(op) == op && "Decoder::next: decoded op is not canonical");
    *out = std::move(op);
    return true;
  }
  ended_ = true;
  pos_ = in_.size();
  return false;
}

Program decode_program(std::span<const uint8_t> bytes, const ResultRule& rule) {
  Decoder dec(bytes);
  Program p;
  p.config = dec.config();
  p.has_config = true;
  NameState names(p.config);
  Op op;
  while (dec.next(names, &op)) {
    names.apply(op, rule ? rule(op) : KERN_SUCCESS);
    p.ops.push_back(op);
    p.lines.push_back(0);
  }
  return p;
}

// ---------------------------------------------------------------------------------------
// Encoder: for each argument, the shortest form that decodes to exactly the value.

namespace {

class Encoder {
 public:
  std::vector<uint8_t> out;

  void byte(unsigned b) { out.push_back(static_cast<uint8_t>(b)); }
  void raw(uint64_t v, unsigned nbytes) {
    for (unsigned i = 0; i < nbytes; i++) byte(static_cast<uint8_t>(v >> (8 * i)));
  }

  void addr(uint64_t a, bool anywhere) {
    if (anywhere) return byte(14);
    uint64_t page = trunc_page(a), off = a & (kPageSize - 1);
    for (unsigned i = 0; i < 16; i++) {
      if (page >= kWindowBases[i] && page - kWindowBases[i] < 16 * kPageSize) {
        byte(i << 4);
        unsigned p = static_cast<unsigned>((page - kWindowBases[i]) / kPageSize);
        if (off == 0) return byte(p);
        byte(p | 0xd0);
        return raw(off, 2);
      }
    }
    if (off == 0)
      for (unsigned i = 0; i < 16; i++)
        if (a >= kFarBases[i] && a - kFarBases[i] < 16 * kPageSize) {
          byte(9);
          return byte(i | static_cast<unsigned>((a - kFarBases[i]) / kPageSize) << 4);
        }
    for (unsigned i = 0; i < 16; i++)
      if (a == kEdgeAddrs[i]) {
        byte(11);
        return byte(i);
      }
    byte(13);
    raw(a, 8);
  }

  void size(uint64_t s) {
    bool aligned = (s & (kPageSize - 1)) == 0;
    uint64_t pages = s / kPageSize;
    if (aligned && pages >= 1 && pages <= 8) return byte(static_cast<unsigned>(pages - 1) << 4);
    if (s <= 255) {
      byte(10);
      return byte(static_cast<unsigned>(s));
    }
    if (aligned && pages >= 1 && pages <= 256) {
      byte(12);
      return byte(static_cast<unsigned>(pages - 1));
    }
    for (unsigned i = 0; i < 16; i++)
      if (s == kEdgeSizes[i]) {
        byte(13);
        return byte(i);
      }
    byte(15);
    raw(s, 8);
  }

  void offset(uint64_t o) {
    if ((o & (kPageSize - 1)) == 0 && o < 16 * kPageSize) return byte(static_cast<unsigned>(o / kPageSize));
    if (o >= 1 && o <= 31) return byte(static_cast<unsigned>(o + 0xdf));
    byte(0xff);
    raw(o, 8);
  }

  void length(uint64_t len) {
    len = std::min(len, kMaxCodecTransfer);
    if (len >= 1 && len <= 64) return byte(static_cast<unsigned>(len - 1));
    if (len % kPageSize == 0 && len / kPageSize >= 1 && len / kPageSize <= 16)
      return byte(0xc0 + static_cast<unsigned>(len / kPageSize - 1));
    byte(0xf0);
    raw(len, 3);
  }

  void data(const DataSpec& d) {
    switch (d.form) {
      case DataSpec::Form::Fill:
      case DataSpec::Form::Pat:
        byte(d.form == DataSpec::Form::Fill ? 0 : 3);
        byte(d.value);
        return length(d.length);
      case DataSpec::Form::Hex:
      case DataSpec::Form::Text: {
        byte(d.form == DataSpec::Form::Hex ? 6 : 7);
        uint64_t len = std::min<uint64_t>(d.bytes.size(), kMaxCodecTransfer);
        length(len);
        out.insert(out.end(), d.bytes.begin(), d.bytes.begin() + static_cast<ptrdiff_t>(len));
        return;
      }
    }
  }

  void op(const Op& op);
};

void Encoder::op(const Op& o) {
  byte(static_cast<unsigned>(o.kind));
  for (Slot s : op_spec(o.kind).slots()) {
    switch (s) {
      case Slot::Task:
      case Slot::NewTask:
      case Slot::EndTask: byte(o.task); break;
      case Slot::TaskCpu: byte((o.task & 15u) | (o.cpu & 15u) << 4); break;
      case Slot::ChildTask: byte(o.task2); break;
      case Slot::Copy:
      case Slot::NewCopy: byte(o.copy); break;
      case Slot::Object:
      case Slot::NewObject: byte(o.object); break;
      case Slot::AddrOrAny: addr(o.addr, o.anywhere); break;
      case Slot::Addr:
      case Slot::SrcAddr: addr(o.addr, false); break;
      case Slot::DstAddr: addr(o.addr2, false); break;
      case Slot::Size:
      case Slot::Xfer:
      case Slot::ObjSize:
      case Slot::DevSize: size(o.size); break;
      case Slot::Offset: offset(o.offset); break;
      case Slot::ProtMax: byte((o.prot & 7u) | (o.set_max ? 8u : 0u)); break;
      case Slot::Inheritance: byte(static_cast<unsigned>(o.inherit)); break;
      case Slot::Data: data(o.data); break;
      case Slot::ObjFlags:
      case Slot::DevData: {
        bool has_data = !(o.data == DataSpec{});
        if (s == Slot::ObjFlags)
          byte(static_cast<unsigned>(o.strategy) | (o.persist ? 4u : 0u) | (has_data ? 8u : 0u));
        else
          byte(has_data ? 1u : 0u);
        if (has_data) data(o.data);
        break;
      }
      case Slot::MapMode: {
        bool opts = o.prot != VM_PROT_DEFAULT || o.max_prot != VM_PROT_ALL || o.inherit != vm_inherit_t::Copy;
        byte((o.share ? 1u : 0u) | (opts ? 2u : 0u));
        if (opts) byte((o.prot & 7u) | (o.max_prot & 7u) << 3 | static_cast<unsigned>(o.inherit) << 6);
        break;
      }
      case Slot::PageCount:
        if (o.all) {
          byte(0xff);
        } else if (o.size < 0xfe) {
          byte(static_cast<unsigned>(o.size));
        } else {
          byte(0xfe);
          raw(o.size, 8);
        }
        break;
      case Slot::Choice: byte(o.choice & 0xffu); break;  // an exact N is folded to ~(N mod 256)
      case Slot::ReplyHow: byte(static_cast<unsigned>(o.how)); break;
      case Slot::LockHow: byte(static_cast<unsigned>(o.lock) - 1u); break;
    }
  }
}

/// The config byte values that decode to cfg (nearest representable values).
void encode_config(const SystemConfig& cfg, Encoder* e) {
  unsigned best = 0;
  for (unsigned i = 1; i < 16; i++) {
    auto dist = [&](unsigned v) { return v > cfg.frames ? v - cfg.frames : cfg.frames - v; };
    if (dist(kFramesTable[i]) < dist(kFramesTable[best])) best = i;
  }
  e->byte(best);
  e->byte(std::clamp(cfg.cpus, 1u, 4u) - 1);
  e->byte(std::clamp(cfg.tlb, 1u, 64u) - 1);
  e->byte(std::min(cfg.cache, 8u));
}

}  // namespace

std::vector<uint8_t> encode_program(const Program& p) {
  // The lowest version that can say the program: a program without a newer format's ops
  // keeps the bytes an older format gave it (a kind byte means the same in every format
  // that knows it).
  unsigned version = 1;
  for (const Op& op : p.ops) version = std::max<unsigned>(version, op_spec(op.kind).format);
  Encoder e;
  e.byte(version);
  encode_config(p.config, &e);
  for (const Op& op : p.ops) e.op(op);
  return std::move(e.out);
}

}  // namespace vmfuzz
