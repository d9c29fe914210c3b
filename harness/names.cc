// names.cc — name liveness of a run (see names.h for the rules).
#include "harness/names.h"

#include <cassert>

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
  switch (op.kind) {
    case OpKind::Task:
      return free_task(*this, op.task);
    case OpKind::Allocate:
    case OpKind::Deallocate:
    case OpKind::Protect:
    case OpKind::Inherit:
    case OpKind::VmCopy:
    case OpKind::Terminate:
      return need_task(*this, op.task);
    case OpKind::Write:
    case OpKind::Read:
      if ((r = need_task(*this, op.task))) return r;
      return cpu_ok(*this, op.cpu);
    case OpKind::Fork:
      if ((r = need_task(*this, op.task))) return r;
      return free_task(*this, op.task2);
    case OpKind::VmRead:
      if ((r = need_task(*this, op.task))) return r;
      return free_copy(*this, op.copy);
    case OpKind::VmWrite:
    case OpKind::Copyout:
      if ((r = need_task(*this, op.task))) return r;
      return need_copy(*this, op.copy);
    case OpKind::Discard:
      return need_copy(*this, op.copy);
    case OpKind::Object: {
      if (object_live(op.object))
        return "m" + std::to_string(op.object) + ": memory object already exists";
      if (op.size > UINT64_MAX - (kPageSize - 1))
        return "m" + std::to_string(op.object) + ": object size wraps past 2^64 when rounded to pages";
      uint64_t rounded = round_page(op.size);
      if (op.data.size() > rounded)
        return "m" + std::to_string(op.object) + ": initial contents (" +
               std::to_string(op.data.size()) + " bytes) longer than the object (" +
               std::to_string(rounded) + " bytes)";
      return std::nullopt;
    }
    case OpKind::Device: {
      std::string m = "m" + std::to_string(op.object);
      if (object_live(op.object)) return m + ": memory object already exists";
      if (op.size > kMaxDeviceSize)
        return m + ": device of " + std::to_string(op.size) + " bytes (at most " +
               std::to_string(kMaxDeviceSize) + ")";
      if (op.data.size() > round_page(op.size))
        return m + ": initial contents (" + std::to_string(op.data.size()) +
               " bytes) longer than the device (" + std::to_string(round_page(op.size)) + " bytes)";
      return std::nullopt;
    }
    case OpKind::Map:
      if ((r = need_task(*this, op.task))) return r;
      return need_object(*this, op.object);
    case OpKind::ManagerWrite:
    case OpKind::File:
    case OpKind::Destroy:
      return need_object(*this, op.object);
    case OpKind::Pageout:
    case OpKind::Check:
      return std::nullopt;
  }
  return "unknown op kind " + std::to_string(static_cast<unsigned>(op.kind));
}

void NameState::apply(const Op& op, kern_return_t result) {
  assert(!check(op) && "NameState::apply: op is not usable input in this state");
  auto bit = [](unsigned i) { return static_cast<uint16_t>(1u << i); };
  switch (op.kind) {
    case OpKind::Task:
      tasks_ |= bit(op.task);
      break;
    case OpKind::Fork:
      tasks_ |= bit(op.task2);
      break;
    case OpKind::Terminate:
      tasks_ &= static_cast<uint16_t>(~bit(op.task));
      break;
    case OpKind::VmRead:
      if (result == KERN_SUCCESS) copies_ |= bit(op.copy);
      break;
    case OpKind::VmWrite:
    case OpKind::Copyout:
    case OpKind::Discard:
      copies_ &= static_cast<uint16_t>(~bit(op.copy));
      break;
    case OpKind::Object:
    case OpKind::Device:
      objects_ |= bit(op.object);
      break;
    default:
      break;
  }
}

}  // namespace vmfuzz
