// op_shapes.cc — the shapes of each argument slot (see op_shapes.h).
#include "harness/lang/op_shapes.h"

#include <iterator>

#include "harness/lang/codec.h"
#include "harness/lang/op_table.h"

namespace vmfuzz {

namespace {

constexpr uint64_t kPage = kPageSize;

/// Mostly one of 8 pages of the low window; sometimes an unaligned address near a page
/// end, a far base, or an edge of user space or of 2^64 (codec.h's tables).
uint64_t shaped_addr(const Pick& pick) {
  switch (pick(16)) {
    case 0: return kEdgeAddrs[pick(std::size(kEdgeAddrs))];
    case 1: return kFarBases[pick(std::size(kFarBases))];
    case 2: return kUserMax - kPage * (1 + pick(2));            // the last pages below the hole
    case 3: return 0x10000 + pick(8) * kPage + kPage - 1 - pick(8);  // crossing a page end
    default: return 0x10000 + pick(8) * kPage;
  }
}

uint64_t shaped_size(const Pick& pick) {
  switch (pick(16)) {
    case 0: return kEdgeSizes[pick(std::size(kEdgeSizes))];
    case 1: return 1 + pick(0x20);
    default: return (1 + pick(4)) * kPage;
  }
}

DataSpec shaped_data(const Pick& pick) {
  static constexpr uint64_t kLengths[] = {0x10, kPage, 2 * kPage, 3};
  uint8_t b = static_cast<uint8_t>(1 + pick(255));
  uint64_t len = kLengths[pick(std::size(kLengths))];
  return pick(4) == 0 ? DataSpec::pat(b, len) : DataSpec::fill(b, len);
}

}  // namespace

Op shaped_op(OpKind k, const Pick& pick) {
  Op op;
  op.kind = k;
  for (Slot s : op_spec(k).slots()) {
    switch (s) {
      case Slot::Task:
      case Slot::EndTask: op.task = static_cast<uint8_t>(pick(4)); break;
      case Slot::TaskCpu:
        op.task = static_cast<uint8_t>(pick(4));
        op.cpu = pick(4) == 0 ? 1 : 0;
        break;
      case Slot::NewTask: op.task = static_cast<uint8_t>(1 + pick(5)); break;
      case Slot::ChildTask: op.task2 = static_cast<uint8_t>(1 + pick(5)); break;
      case Slot::Copy:
      case Slot::NewCopy: op.copy = static_cast<uint8_t>(pick(3)); break;
      case Slot::Object:
      case Slot::NewObject: op.object = static_cast<uint8_t>(pick(4)); break;
      case Slot::AddrOrAny:
        op.anywhere = pick(6) == 0;
        op.addr = op.anywhere ? 0 : shaped_addr(pick);
        break;
      case Slot::Addr:
      case Slot::SrcAddr: op.addr = shaped_addr(pick); break;
      case Slot::DstAddr: op.addr2 = shaped_addr(pick); break;
      case Slot::Size: op.size = shaped_size(pick); break;
      case Slot::Xfer: op.size = pick(2) ? 0x10 : (1 + pick(2)) * kPage; break;
      case Slot::ObjSize:
      case Slot::DevSize: op.size = (1 + pick(4)) * kPage; break;
      case Slot::Offset: op.offset = pick(8) == 0 ? 1 + pick(31) : pick(3) * kPage; break;
      case Slot::ProtMax:
        op.prot = static_cast<vm_prot_t>(pick(8));
        op.set_max = pick(5) == 0;
        break;
      case Slot::Inheritance: op.inherit = static_cast<vm_inherit_t>(pick(3)); break;
      case Slot::Data: op.data = shaped_data(pick); break;
      case Slot::ObjFlags:
        op.strategy = static_cast<CopyStrategy>(pick(3));
        op.persist = pick(2);
        [[fallthrough]];
      case Slot::DevData:
        if (pick(4) != 0) op.data = DataSpec::fill(static_cast<uint8_t>(1 + pick(255)), op.size - pick(2) * (op.size / 2));
        break;
      case Slot::MapMode:
        op.share = pick(2);
        if (pick(4) == 0) {
          op.prot = static_cast<vm_prot_t>(pick(8));
          op.max_prot = pick(2) ? VM_PROT_ALL : static_cast<vm_prot_t>(op.prot | pick(8));
          op.inherit = static_cast<vm_inherit_t>(pick(3));
        }
        break;
      case Slot::PageCount:
        op.all = pick(3) == 0;
        op.size = op.all ? 0 : 1 + pick(8);
        break;
      case Slot::Choice: op.choice = static_cast<uint16_t>(pick(4)); break;  // `~N`: any N is usable
      case Slot::ReplyHow: op.how = static_cast<ReplyHow>(pick(3)); break;
    }
  }
  return op;
}

}  // namespace vmfuzz
