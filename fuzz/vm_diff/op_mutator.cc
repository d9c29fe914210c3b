// op_mutator.cc — vm_diff's op-level mutations (see op_mutator.h).
#include "fuzz/vm_diff/op_mutator.h"

#include <cstdio>
#include <cstring>
#include <iterator>
#include <string>

#include "harness/lang/op_shapes.h"
#include "harness/lang/text.h"

namespace vmfuzz::fuzz {

namespace {

// Building blocks, as trace lines; T/U are tasks, P/Q page addresses, B a byte.
constexpr const char* kTemplates[] = {
    "fork tT tU",
    "terminate tT",
    "task tT",
    "allocate tT P 0x4000",
    "deallocate tT P 0x1000",
    "write tT P fill:B*0x1000",
    "write tT P fill:B*0x10 cpu=1",
    "read tT P 0x1000",
    "read tT P 0x10 cpu=1",
    "protect tT P 0x2000 r--",
    "protect tT P 0x2000 rw-",
    "inherit tT P 0x4000 share",
    "inherit tT P 0x4000 copy",
    "vm_copy tT P 0x2000 Q",
    "vm_read tT P 0x2000 c0",
    "copyout tT c0",
    "vm_write tT Q c0",
    "pageout all",
    "pageout 3",
    "object m0 0x4000 delay persist fill:B*0x4000",
    "object m1 0x4000 call nopersist fill:B*0x1000",
    "object m2 0x4000 none persist fill:B*0x10",
    "map tT P 0x4000 m0 0x0 share",
    "map tT P 0x4000 m1 0x0 copy",
    "map tT P 0x4000 m2 0x0 share",
    "manager_write m2 0x0 fill:B*0x20",
    "file m0 0x0 0x20",
    "destroy m1",
    "device m3 0x4000 fill:B*0x2000",
    "map tT P 0x4000 m3 0x0 share",
    "map tT P 0x2000 m3 0x1000 copy",
    "manager_write m3 0x1000 fill:B*0x10",
    "file m3 0x1000 0x10",
    "check",
};

std::string fill_template(std::string t, std::minstd_rand& rng) {
  auto replace = [&](const char* key, const std::string& value) {
    for (size_t pos; (pos = t.find(key)) != std::string::npos;) t.replace(pos, std::strlen(key), value);
  };
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%x", 0x10000u + unsigned(rng() % 8) * 0x1000u);
  replace(" P ", std::string(" ") + buf + " ");
  std::snprintf(buf, sizeof buf, "0x%x", 0x10000u + unsigned(rng() % 8) * 0x1000u);
  replace(" Q", std::string(" ") + buf);
  std::snprintf(buf, sizeof buf, "0x%02x", unsigned(rng() % 255) + 1);
  replace("B*", std::string(buf) + "*");
  replace("tT", "t" + std::to_string(rng() % 4));
  replace("tU", "t" + std::to_string(1 + rng() % 5));
  return t;
}

size_t position(std::minstd_rand& rng, size_t n) { return n == 0 ? 0 : size_t(rng() % n); }

}  // namespace

bool mutate_one_op(Program& p, std::minstd_rand& rng) {
  switch (rng() % 6) {
    case 0:
    case 1: {  // insert a building block
      Op op;
      std::string reason;
      std::string line = fill_template(kTemplates[rng() % std::size(kTemplates)], rng);
      if (!parse_op_line(line, &op, &reason)) return false;
      p.ops.insert(p.ops.begin() + std::ptrdiff_t(position(rng, p.ops.size() + 1)), op);
      break;
    }
    case 2: {  // insert an op of any kind of the op table, its slots drawn from their shapes
      unsigned k = rng() % kOpKindCount;
      if (!op_kind_exists(k)) return false;  // a number with no row (31 in format 6)
      OpKind kind = OpKind(k);
      Op op = shaped_op(kind, [&rng](uint64_t n) { return uint64_t(rng()) % n; });
      p.ops.insert(p.ops.begin() + std::ptrdiff_t(position(rng, p.ops.size() + 1)), op);
      break;
    }
    case 3:  // delete
      if (p.ops.empty()) return false;
      p.ops.erase(p.ops.begin() + std::ptrdiff_t(position(rng, p.ops.size())));
      break;
    case 4: {  // duplicate or move one op
      if (p.ops.empty()) return false;
      size_t from = position(rng, p.ops.size());
      Op op = p.ops[from];
      if (rng() % 2) p.ops.erase(p.ops.begin() + std::ptrdiff_t(from));
      p.ops.insert(p.ops.begin() + std::ptrdiff_t(position(rng, p.ops.size() + 1)), op);
      break;
    }
    default: {  // rename one op's task
      if (p.ops.empty()) return false;
      Op& op = p.ops[position(rng, p.ops.size())];
      op.task = uint8_t(rng() % 4);
      break;
    }
  }
  p.lines.assign(p.ops.size(), 0);
  return true;
}

void insert_shaped_sequence(Program& p, std::minstd_rand& rng) {
  std::vector<Op> seq = shaped_sequence([&rng](uint64_t n) { return uint64_t(rng()) % n; });
  p.ops.insert(p.ops.begin() + std::ptrdiff_t(position(rng, p.ops.size() + 1)), seq.begin(), seq.end());
  p.lines.assign(p.ops.size(), 0);
}

}  // namespace vmfuzz::fuzz
