// op_table.h — the op table as the harness reads it: each op's typed argument slots.
//
// Theory of operation
// -------------------
// vocab/vmfuzz/ops.def has one row per op: its keyword, its binary number, the format
// version that introduced it, what it returns and its argument slots in trace order. This
// header turns the rows into `OpSpec` values. Everything that reads or writes an op's
// arguments walks the slots of its row instead of listing ops: the text parser and printer
// and `canonical_op` (text.cc), the binary decoder and encoder (codec.cc), the name rules
// (names.cc), the dictionary and mutator checks, and the property generators' shapes.
// Adding an op is a row here plus its meaning: the `MemorySystem` entry point, the VM's
// and the model's implementations, and the executor's call (executor.cc: execute_op).
//
// A slot owns some fields of `Op` and defines, once for every op that uses it:
//
//   slot         text form                 binary form (codec.h)   fields       name rule
//   Task         tN                        TASK                    task         live
//   NewTask      tN                        NEWTASK                 task         free; created
//   ChildTask    tN                        NEWTASK                 task2        free; created
//   EndTask      tN                        TASK                    task         live; ended
//   TaskCpu      tN ... [cpu=N]            TASKCPU                 task, cpu    live; cpu < cpus
//   Copy         cN                        COPY                    copy         live; consumed
//   NewCopy      cN                        NEWCOPY                 copy         free; made on success
//   Object       mN                        OBJ                     object       live
//   NewObject    mN                        NEWOBJ                  object       free; created
//   AddrOrAny    ADDR | any                ADDR (any allowed)      addr, anywhere
//   Addr         ADDR "address"            ADDR                    addr
//   SrcAddr      ADDR "source address"     ADDR                    addr
//   DstAddr      ADDR "destination address" ADDR                   addr2
//   Size         SIZE                      SIZE                    size
//   Xfer         SIZE (<= 64 MiB)          XFER                    size
//   ObjSize      SIZE                      object's SIZE           size         rounding must not wrap
//   DevSize      SIZE                      device's SIZE           size         <= kMaxDeviceSize
//   Offset       OFFSET                    OFFSET                  offset
//   ProtMax      [max] PROT                PROTB                   set_max, prot
//   Inheritance  share|copy|none           INHB                    inherit
//   Data         DATA                      DATA                    data
//   ObjFlags     STRATEGY PERSIST [DATA]   OBJF [DATA]             strategy, persist, data   data fits
//   DevData      [DATA]                    DEVF [DATA]             data         data fits
//   MapMode      share|copy [prot= max= inherit=]  MAPF [MAPO]     share, prot, max_prot, inherit
//   PageCount    N | all                   PAGEOUT                 size, all
//   Choice       N | ~N                    CHOICE                  choice, choice_exact   (run, reply)
//   ReplyHow     supply|unavailable|error  HOWB                    how
//   LockHow      return|flush|both         LOCKB                   lock   (should_return, should_flush)
#pragma once

#include <cstdint>
#include <span>

#include "vmfuzz/vocab.h"

namespace vmfuzz {

/// One typed argument of an op (the table above).
enum class Slot : uint8_t {
  Task, NewTask, ChildTask, EndTask, TaskCpu, Copy, NewCopy, Object, NewObject,
  AddrOrAny, Addr, SrcAddr, DstAddr, Size, Xfer, ObjSize, DevSize, Offset,
  ProtMax, Inheritance, Data, ObjFlags, DevData, MapMode, PageCount, Choice, ReplyHow, LockHow,
};
inline constexpr unsigned kSlotCount = static_cast<unsigned>(Slot::LockHow) + 1;

/// What an op answers, and so which assertions may follow it in a trace.
enum class Returns : uint8_t {
  Nothing,       // no result (the op cannot fail): `=> KERN_SUCCESS` is all it can assert
  Code,          // a kern_return_t: `=> CODE`
  Load,          // a user read: `== DATA`, `=> fault ADDR CODE`, `=> CODE`
  Store,         // a user write: `=> fault ADDR CODE`, `=> CODE`
  Bytes,         // bytes from the manager (`file`): `== DATA`, `=> CODE`
  Address,       // an address always (copyout): `=> 0xADDR`, `=> CODE`
  AddressIfAny,  // an address when placed `any` (allocate, map): `=> 0xADDR` then
};

inline constexpr unsigned kMaxSlots = 6;

/// One row of ops.def.
struct OpSpec {
  OpKind kind;
  const char* name;
  uint8_t number;
  uint8_t format;  // the binary format version that introduced the op
  Returns returns;
  uint8_t nslots;
  Slot slot_array[kMaxSlots];

  std::span<const Slot> slots() const { return {slot_array, nslots}; }
  bool has(Slot s) const;
};

/// Every row, in ops.def order (= binary number order).
std::span<const OpSpec> op_table();
/// The row of an op kind.
const OpSpec& op_spec(OpKind k);

/// Does an op of this kind carry DATA (a Data, ObjFlags or DevData slot)?
bool op_has_data(OpKind k);
/// May `== DATA` follow it? May `=> fault`? May `=> 0xADDR` (given its `any`)?
bool op_asserts_bytes(OpKind k);
bool op_asserts_fault(OpKind k);
bool op_returns_address(const Op& op);
/// Does the op return nothing (its row's `returns` is Nothing)?
bool op_returns_nothing(OpKind k);

/// The trace spelling of a slot for messages and docs ("task", "address", ...).
const char* slot_name(Slot s);

}  // namespace vmfuzz
