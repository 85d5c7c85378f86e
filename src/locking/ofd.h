// Thin wrappers over Linux open-file-description record locks (F_OFD_SETLK / F_OFD_GETLK).
//
// OFD locks belong to an open file description, not to a process: they exclude threads that use
// different descriptions, survive close() of unrelated descriptors of the same file (the classic
// POSIX-lock trap), and are released by the kernel when the last descriptor of the description
// closes, including when the process is killed.
#pragma once

#include <fcntl.h>

#include <cstdint>

#include "util/status.h"

namespace imgstore::locking {

enum class ByteLock : short { kUnlocked = F_UNLCK, kRead = F_RDLCK, kWrite = F_WRLCK };

// The bytes of a lock file that carry meaning as locks. They lie far beyond the file's data, so
// they never touch it (record locks do not need the bytes to exist).
inline constexpr int64_t kByteUpgrade = int64_t{1} << 40;     // U: held by the one writer
inline constexpr int64_t kByteGate = (int64_t{1} << 40) + 1;  // G: closes the door for fairness
inline constexpr int64_t kByteData = (int64_t{1} << 40) + 2;  // D: shared or exclusive access
inline constexpr int64_t kByteSlot0 = int64_t{1} << 41;       // slot i: kByteSlot0 + i

// Sets (or converts, or releases) the lock on one byte without waiting. Returns false when
// another description holds a conflicting lock; an error Status for anything else.
Result<bool> TrySetByte(int fd, int64_t offset, ByteLock type);
// Releases a byte lock; cannot fail for a valid fd (aborts on a bug).
void UnlockByte(int fd, int64_t offset);
// The strongest conflicting lock another description holds on the byte if we asked for `type`
// (kUnlocked when none). Never changes anything.
Result<ByteLock> ProbeByte(int fd, int64_t offset, ByteLock type);

}  // namespace imgstore::locking
