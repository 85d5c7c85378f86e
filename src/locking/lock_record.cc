// Reading and writing the diagnostics records and header of lock files.
#include "locking/lock_record.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "locking/ofd.h"

namespace imgstore::locking {
namespace {

constexpr char kHeaderMagic[8] = {'I', 'M', 'G', 'S', 'L', 'C', 'K', '1'};
constexpr char kRecordMagic[8] = {'I', 'M', 'G', 'S', 'S', 'L', 'T', '1'};
constexpr size_t kOpBytes = 480;  // labels carry references by digest (100+ characters)

// Fixed binary layout of a slot record (same machine only: it is never copied elsewhere).
struct RawRecord {
  char magic[8];
  uint32_t checksum;
  int32_t pid;
  uint8_t held;
  uint8_t wanted;
  uint16_t reserved;
  uint32_t held_threads;
  uint32_t waiting_threads;
  uint32_t reserved2;
  int64_t held_since_ns;
  int64_t wait_since_ns;
  char held_op[kOpBytes];
  char wait_op[kOpBytes];
};
static_assert(sizeof(RawRecord) <= kRecordSize);

uint32_t Checksum(const RawRecord& r) {
  // FNV-1a over everything after the checksum field.
  const auto* p = reinterpret_cast<const unsigned char*>(&r) + offsetof(RawRecord, pid);
  const auto* end = reinterpret_cast<const unsigned char*>(&r) + sizeof(RawRecord);
  uint32_t h = 2166136261u;
  for (; p < end; ++p) h = (h ^ *p) * 16777619u;
  return h;
}

// Copies a label into a fixed field; a longer one is cut with "..." (it is only a diagnostic).
void PutOp(char (&dst)[kOpBytes], const std::string& op) {
  std::memset(dst, 0, kOpBytes);
  if (op.size() < kOpBytes) {
    std::memcpy(dst, op.data(), op.size());
  } else {
    std::memcpy(dst, op.data(), kOpBytes - 4);
    std::memcpy(dst + kOpBytes - 4, "...", 3);
  }
}

std::string GetOp(const char (&src)[kOpBytes]) { return std::string(src, strnlen(src, kOpBytes)); }

Status PwriteAll(int fd, const void* buf, size_t len, off_t off) {
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = ::pwrite(fd, p, len, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "write lock file");
    }
    p += n;
    len -= static_cast<size_t>(n);
    off += n;
  }
  return Status::OK();
}

}  // namespace

int64_t NowUnixNs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

Status InitLockFileHeader(int fd, std::string_view name) {
  char buf[8 + sizeof(WakePage::name)] = {};
  std::memcpy(buf, kHeaderMagic, sizeof(kHeaderMagic));
  std::memcpy(buf + 8, name.data(), std::min(name.size(), sizeof(WakePage::name) - 1));
  IMGSTORE_RETURN_IF_ERROR(PwriteAll(fd, buf, sizeof(buf), offsetof(WakePage, magic)));
  // One byte at the end of the page: extends a new file to a full page (so that the mapping
  // never faults) and leaves a longer file as it is.
  const char zero = 0;
  return PwriteAll(fd, &zero, 1, kHeaderSize - 1);
}

Result<uint64_t> ClaimSlot(int fd) {
  for (uint64_t slot = 0;; ++slot) {
    Result<bool> got = TrySetByte(fd, kByteSlot0 + static_cast<int64_t>(slot), ByteLock::kWrite);
    if (!got.ok()) return got.status();
    if (*got) return slot;
  }
}

Status WriteSlot(int fd, uint64_t slot, const SlotState& s) {
  RawRecord r = {};
  std::memcpy(r.magic, kRecordMagic, sizeof(kRecordMagic));
  r.pid = s.pid;
  r.held = static_cast<uint8_t>(s.held);
  r.wanted = static_cast<uint8_t>(s.wanted);
  r.held_threads = static_cast<uint32_t>(s.held_threads);
  r.waiting_threads = static_cast<uint32_t>(s.waiting_threads);
  r.held_since_ns = s.held_since_ns;
  r.wait_since_ns = s.wait_since_ns;
  PutOp(r.held_op, s.held_op);
  PutOp(r.wait_op, s.wait_op);
  r.checksum = Checksum(r);
  return PwriteAll(fd, &r, sizeof(r), kHeaderSize + static_cast<off_t>(slot) * kRecordSize);
}

Result<std::vector<SlotState>> ReadLiveSlots(int fd, int64_t skip_slot) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::FromErrno(errno, "stat lock file");
  std::vector<SlotState> out;
  for (int64_t slot = 0; kHeaderSize + slot * kRecordSize < st.st_size; ++slot) {
    if (slot == skip_slot) continue;
    Result<ByteLock> probe = ProbeByte(fd, kByteSlot0 + slot, ByteLock::kWrite);
    if (!probe.ok()) return probe.status();
    if (*probe == ByteLock::kUnlocked) continue;  // nobody owns the slot: stale record
    RawRecord r;
    ssize_t n = ::pread(fd, &r, sizeof(r), kHeaderSize + slot * kRecordSize);
    if (n != static_cast<ssize_t>(sizeof(r))) continue;
    if (std::memcmp(r.magic, kRecordMagic, sizeof(kRecordMagic)) != 0) continue;
    if (r.checksum != Checksum(r)) continue;  // torn by a concurrent update
    SlotState s;
    s.pid = r.pid;
    s.held = static_cast<LockMode>(r.held);
    s.wanted = static_cast<LockMode>(r.wanted);
    s.held_threads = static_cast<int>(r.held_threads);
    s.waiting_threads = static_cast<int>(r.waiting_threads);
    s.held_since_ns = r.held_since_ns;
    s.wait_since_ns = r.wait_since_ns;
    s.held_op = GetOp(r.held_op);
    s.wait_op = GetOp(r.wait_op);
    out.push_back(std::move(s));
  }
  return out;
}

std::string ReadLockName(int fd) {
  char buf[8 + sizeof(WakePage::name)] = {};
  ssize_t n = ::pread(fd, buf, sizeof(buf), offsetof(WakePage, magic));
  if (n < 8 || std::memcmp(buf, kHeaderMagic, 8) != 0) return "";
  buf[sizeof(buf) - 1] = 0;
  return std::string(buf + 8);
}

}  // namespace imgstore::locking
