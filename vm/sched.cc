// sched.cc — assert_wait / thread_wakeup over value events. Theory of operation: sched.h.
#include "vm/sched.h"

#include <cassert>
#include <cinttypes>
#include <cstdio>

namespace vmfuzz::vm {

const char* yield_point_name(YieldPoint y) {
  switch (y) {
#define VMFUZZ_YIELD(E, NAME, WHERE, WAITS) \
  case YieldPoint::E:                       \
    return NAME;
#include "vm/yield_points.def"
#undef VMFUZZ_YIELD
  }
  return "?";
}

std::string wait_event_name(const WaitEvent& e) {
  char buf[96];
  switch (e.kind) {
    case WaitEvent::Kind::None: return "nothing";
    case WaitEvent::Kind::PageBusy:
      std::snprintf(buf, sizeof buf, "page_busy(object %" PRIu64 ", 0x%" PRIx64 ")", e.object, e.offset);
      return buf;
    case WaitEvent::Kind::AbsentBelow:
      std::snprintf(buf, sizeof buf, "absent_below(object %" PRIu64 ")", e.object);
      return buf;
    case WaitEvent::Kind::PagerReady:
      std::snprintf(buf, sizeof buf, "pager_ready(object %" PRIu64 ")", e.object);
      return buf;
  }
  return "?";
}

void Scheduler::assert_wait(const WaitEvent& e, YieldPoint y) {
  assert(current != nullptr && "assert_wait: no current thread (this kernel path cannot block)");
  if (current->id == 0) current->id = next_id++;  // a new op's access becomes a thread
  current->state = KThread::State::Blocked;
  current->event = e;
  current->where = y;
  current->since_step = step;
}

unsigned Scheduler::thread_wakeup(const WaitEvent& e) {
  unsigned n = 0;
  for (auto& [id, t] : threads) {
    if (t.state != KThread::State::Blocked || !(t.event == e)) continue;
    t.state = KThread::State::Runnable;
    t.woken_from = e;
    t.event = WaitEvent{};
    t.since_step = step;
    ++n;
  }
  return n;
}

std::vector<uint32_t> Scheduler::runnable() const {
  std::vector<uint32_t> r;
  for (const auto& [id, t] : threads)
    if (t.state == KThread::State::Runnable) r.push_back(id);
  return r;
}

}  // namespace vmfuzz::vm
