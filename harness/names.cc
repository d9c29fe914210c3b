// names.cc — name liveness of a run (see names.h for the rules).
#include "harness/names.h"

#include <cassert>

#include "harness/op_table.h"

namespace vmfuzz {

NameState::NameState(const SystemConfig& cfg) : cpus_(cfg.cpus) {}

namespace {

std::optional<std::string> need_task(const NameState& n, unsigned t) {
  if (n.task_live(t)) return std::nullopt;
  return "t" + std::to_string(t) + ": no such task";
}
std::optional<std::string> free_task(const NameState& n, unsigned t) {
  if (!n.task_live(t)) return std::nullopt;
  return "t" + std::to_string(t) + ": task already exists";
}
std::optional<std::string> need_copy(const NameState& n, unsigned c) {
  if (n.copy_live(c)) return std::nullopt;
  return "c" + std::to_string(c) + ": no such copy handle (never made, or already consumed)";
}
std::optional<std::string> free_copy(const NameState& n, unsigned c) {
  if (!n.copy_live(c)) return std::nullopt;
  return "c" + std::to_string(c) + ": copy handle already exists";
}
std::optional<std::string> need_object(const NameState& n, unsigned m) {
  if (n.object_live(m)) return std::nullopt;
  return "m" + std::to_string(m) + ": no such memory object";
}
std::optional<std::string> cpu_ok(const NameState& n, unsigned cpu) {
  if (cpu < n.cpus()) return std::nullopt;
  return "cpu=" + std::to_string(cpu) + ": only " + std::to_string(n.cpus()) +
         " CPUs configured (0.." + std::to_string(n.cpus() - 1) + ")";
}

}  // namespace

std::optional<std::string> NameState::check(const Op& op) const {
  std::optional<std::string> r;
  auto m = [&op] { return "m" + std::to_string(op.object); };
  for (Slot s : op_spec(op.kind).slots()) {
    switch (s) {
      case Slot::Task:
      case Slot::EndTask: r = need_task(*this, op.task); break;
      case Slot::TaskCpu:
        if (!(r = need_task(*this, op.task))) r = cpu_ok(*this, op.cpu);
        break;
      case Slot::NewTask: r = free_task(*this, op.task); break;
      case Slot::ChildTask: r = free_task(*this, op.task2); break;
      case Slot::Copy: r = need_copy(*this, op.copy); break;
      case Slot::NewCopy: r = free_copy(*this, op.copy); break;
      case Slot::Object: r = need_object(*this, op.object); break;
      case Slot::NewObject:
        if (object_live(op.object)) r = m() + ": memory object already exists";
        break;
      case Slot::ObjSize:
        if (op.size > UINT64_MAX - (kPageSize - 1)) r = m() + ": object size wraps past 2^64 when rounded to pages";
        break;
      case Slot::DevSize:
        if (op.size > kMaxDeviceSize)
          r = m() + ": device of " + std::to_string(op.size) + " bytes (at most " +
              std::to_string(kMaxDeviceSize) + ")";
        break;
      case Slot::ObjFlags:
      case Slot::DevData: {
        const char* what = s == Slot::ObjFlags ? "object" : "device";
        uint64_t rounded = round_page(op.size);
        if (op.data.size() > rounded)
          r = m() + ": initial contents (" + std::to_string(op.data.size()) + " bytes) longer than the " +
              what + " (" + std::to_string(rounded) + " bytes)";
        break;
      }
      default:
        break;
    }
    if (r) return r;
  }
  return std::nullopt;
}

void NameState::apply(const Op& op, kern_return_t result) {
  assert(!check(op) && "NameState::apply: op is not usable input in this state");
  auto bit = [](unsigned i) { return static_cast<uint16_t>(1u << i); };
  for (Slot s : op_spec(op.kind).slots()) {
    switch (s) {
      case Slot::NewTask: tasks_ |= bit(op.task); break;
      case Slot::ChildTask: tasks_ |= bit(op.task2); break;
      case Slot::EndTask: tasks_ &= static_cast<uint16_t>(~bit(op.task)); break;
      case Slot::NewCopy:
        if (result == KERN_SUCCESS) copies_ |= bit(op.copy);
        break;
      case Slot::Copy: copies_ &= static_cast<uint16_t>(~bit(op.copy)); break;
      case Slot::NewObject: objects_ |= bit(op.object); break;
      default: break;
    }
  }
}

}  // namespace vmfuzz
