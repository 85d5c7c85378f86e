// OFD record-lock wrappers: one fcntl each, EINTR retried.
#include "locking/ofd.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace imgstore::locking {
namespace {

struct flock ByteFlock(int64_t offset, short type) {
  struct flock fl = {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = offset;
  fl.l_len = 1;
  fl.l_pid = 0;  // required for OFD locks
  return fl;
}

}  // namespace

Result<bool> TrySetByte(int fd, int64_t offset, ByteLock type) {
  struct flock fl = ByteFlock(offset, static_cast<short>(type));
  for (;;) {
    if (::fcntl(fd, F_OFD_SETLK, &fl) == 0) return true;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EACCES) return false;
    return Status::FromErrno(errno, "fcntl(F_OFD_SETLK)");
  }
}

void UnlockByte(int fd, int64_t offset) {
  struct flock fl = ByteFlock(offset, F_UNLCK);
  while (::fcntl(fd, F_OFD_SETLK, &fl) != 0) {
    if (errno == EINTR) continue;
    // Unlocking a byte of a valid descriptor cannot fail; if it does, state is unknowable.
    std::perror("imgstore: fcntl(F_OFD_SETLK, F_UNLCK)");
    std::abort();
  }
}

Result<ByteLock> ProbeByte(int fd, int64_t offset, ByteLock type) {
  struct flock fl = ByteFlock(offset, static_cast<short>(type));
  for (;;) {
    if (::fcntl(fd, F_OFD_GETLK, &fl) == 0) return static_cast<ByteLock>(fl.l_type);
    if (errno == EINTR) continue;
    return Status::FromErrno(errno, "fcntl(F_OFD_GETLK)");
  }
}

}  // namespace imgstore::locking
