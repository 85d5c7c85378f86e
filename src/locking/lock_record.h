// The layout of a lock file: a wake-up page and one diagnostics record per process slot.
//
//   [0, 4096)           header page, mapped shared by every process that has the file open:
//                       a futex word bumped at every release, a count of sleeping waiters, a
//                       magic and the lock's name
//   [4096 + 1024*i, +1024) slot i: who (pid), holds what since when, waits for what since when
//
// A slot belongs to the process that holds the OFD write lock on byte kByteSlot0 + i; a record
// whose slot lock is free is stale and ignored. Nothing here is state: a torn or stale record
// only makes a diagnostic less precise (a checksum drops torn ones).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "locking/locking.h"
#include "util/status.h"

namespace imgstore::locking {

inline constexpr int64_t kHeaderSize = 4096;
inline constexpr int64_t kRecordSize = 1024;

struct WakePage {
  std::atomic<uint32_t> seq;      // bumped after every change that may let a waiter in
  std::atomic<uint32_t> waiters;  // threads asleep on seq (a hint: a killed sleeper leaves +1)
  // Processes whose writer holds the gate G:write right now (a hint: readers of a process that
  // already holds D:read check G with F_OFD_GETLK only when it is non-zero).
  std::atomic<uint32_t> gate_writers;
  char magic[8];
  char name[240];
  // Set by LockSpace::RemoveIfUnused while it holds the lock exclusively, just before it unlinks
  // the file: an acquirer that sees it checks (fstat) whether the file it locked is still linked.
  // A hint only; a remover killed between setting it and unlinking leaves a linked file, which
  // the next holder notices and clears.
  std::atomic<uint32_t> removed;
};
static_assert(sizeof(WakePage) <= kHeaderSize);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

// What one process publishes about its use of one lock.
struct SlotState {
  pid_t pid = 0;
  LockMode held = LockMode::kNone;
  int held_threads = 0;
  int64_t held_since_ns = 0;
  std::string held_op;
  LockMode wanted = LockMode::kNone;
  int waiting_threads = 0;
  int64_t wait_since_ns = 0;
  std::string wait_op;
};

// Writes the magic and name and makes the file at least one page long, without ever shrinking
// it or touching the wake words (safe when several processes create the file at once).
Status InitLockFileHeader(int fd, std::string_view name);
// Takes the first free slot of this file for this open file description.
Result<uint64_t> ClaimSlot(int fd);
Status WriteSlot(int fd, uint64_t slot, const SlotState& state);
// The records of every live slot (slot lock held), optionally skipping one slot (our own).
Result<std::vector<SlotState>> ReadLiveSlots(int fd, int64_t skip_slot);
// The name recorded in the header ("" if the header is not there).
std::string ReadLockName(int fd);

int64_t NowUnixNs();

}  // namespace imgstore::locking
