// Layer extraction (extract.h): libarchive reads the tar, every entry is written relative to a
// root descriptor per target (safe_fs.h), whiteouts are applied or converted per target, and the
// stream is hashed as it is fed to libarchive so that the diffID covers every byte.
#include "layers/extract.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "layers/safe_fs.h"
#include "layers/tar_entry.h"
#include "util/block_pipe.h"

namespace imgstore::layers {
namespace {

constexpr size_t kReadBuffer = 1 << 20;
constexpr uint64_t kCancelCheckBytes = 4 << 20;

std::string Q(std::string_view s) {
  std::string out = "'";
  out += s;
  out += "'";
  return out;
}

Status Errno(std::string_view what, std::string_view path) {
  int err = errno;
  std::string w(what);
  w += ' ';
  w += Q(path);
  return Status::FromErrno(err, w);
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string s(dir);
  s += '/';
  s += name;
  return s;
}

size_t Depth(const std::string& p) { return std::count(p.begin(), p.end(), '/'); }

// Whether an xattr name is overlayfs bookkeeping ("trusted.overlay.x", "user.overlay.x"): a
// layer must not forge whiteouts, opaque marks or redirects.
bool IsOverlayXattrName(std::string_view name) {
  size_t dot = name.find('.');
  return dot != std::string_view::npos && name.substr(dot + 1).starts_with("overlay.");
}

// Feeds libarchive from the (decompressed) stream. A reader thread decompresses, counts, hashes
// and bounds the stream (max_tar_bytes) a few blocks ahead, so that decompression and hashing
// run on one core while the extracting thread's writes run on another (as `tar -xzf` and its
// gzip child do). Every byte the reader sees is hashed, whether or not libarchive uses it.
class StreamFeeder {
 public:
  StreamFeeder(SequentialFile& file, const ExtractOptions& options)
      : file_(file), options_(options), pipe_(4, kReadBuffer) {
    thread_ = std::thread([this] { Produce(); });
  }
  ~StreamFeeder() { Stop(); }
  StreamFeeder(const StreamFeeder&) = delete;
  StreamFeeder& operator=(const StreamFeeder&) = delete;

  static la_ssize_t Callback(struct archive* a, void* self, const void** out) {
    auto* f = static_cast<StreamFeeder*>(self);
    Result<size_t> n = f->Next(out);
    if (!n.ok()) {
      archive_set_error(a, EIO, "%s", n.status().message().c_str());
      return -1;
    }
    return static_cast<la_ssize_t>(*n);
  }

  // The next block of the stream; 0 at the end. The previous block is recycled: libarchive
  // keeps a block only until its next read callback.
  Result<size_t> Next(const void** out) {
    if (!status_.ok()) return status_;
    if (eof_) return size_t{0};
    if (options_.cancelled && options_.cancelled()) {
      return Fail(Status(Code::kCancelled, "extraction of " + file_.path() + " cancelled"));
    }
    if (current_ != nullptr) pipe_.Return(std::exchange(current_, nullptr));
    BlockPipe::Block* b = pipe_.Receive();
    if (b == nullptr) {
      if (!pipe_.end().ok()) return Fail(pipe_.end());
      eof_ = true;
      return size_t{0};
    }
    current_ = b;
    consumed_ += b->size;
    if (options_.on_progress) options_.on_progress(consumed_);
    if (out) *out = b->data.get();
    return b->size;
  }

  // Whether the stream has ended (a read returned no bytes).
  bool at_end() const { return eof_; }

  // Reads what libarchive left after the end-of-archive blocks, so the digest covers it.
  Status Drain() {
    while (true) {
      Result<size_t> n = Next(nullptr);
      if (!n.ok()) return n.status();
      if (*n == 0) return Status::OK();
    }
  }

  const Status& status() const { return status_; }
  // After the end of the stream (Drain): the bytes and their digest.
  uint64_t bytes() {
    Stop();
    return bytes_;
  }
  Digest Finish() {
    Stop();
    return hasher_.Finish();
  }

 private:
  void Produce() {
    while (BlockPipe::Block* b = pipe_.Free()) {
      Result<size_t> n = file_.Read(b->buffer());
      if (!n.ok()) {
        pipe_.Return(b);
        return pipe_.Finish(n.status());
      }
      if (*n == 0) {
        pipe_.Return(b);
        return pipe_.Finish(Status::OK());
      }
      bytes_ += *n;
      uint64_t max = options_.limits.max_tar_bytes;
      if (max != 0 && bytes_ > max) {
        pipe_.Return(b);
        return pipe_.Finish(
            Status(Code::kInvalidArgument, file_.path() +
                                               ": the uncompressed layer exceeds max_tar_bytes (" +
                                               std::to_string(max) + " bytes)"));
      }
      b->size = *n;
      hasher_.Update(b->bytes());
      pipe_.Send(b);
    }
  }

  void Stop() {
    if (!thread_.joinable()) return;
    pipe_.Cancel();
    thread_.join();
  }

  Status Fail(Status s) {
    status_ = s;
    return s;
  }

  SequentialFile& file_;
  const ExtractOptions& options_;
  BlockPipe pipe_;
  // The producer's alone until it has finished.
  Sha256Hasher hasher_;
  uint64_t bytes_ = 0;
  std::thread thread_;
  // The consumer's.
  BlockPipe::Block* current_ = nullptr;  // lent to libarchive
  uint64_t consumed_ = 0;
  bool eof_ = false;
  Status status_;
};

struct ArchiveDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};

// What a tar header says about an entry, beyond its name and type.
struct Meta {
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  struct timespec times[2] = {};  // atime, mtime
  std::vector<std::pair<std::string, std::string>> xattrs;
};

struct DirMeta {
  mode_t mode = 0;
  struct timespec times[2] = {};
};

struct TargetState {
  const ExtractTarget* spec = nullptr;
  UniqueFd root;
  std::vector<UniqueFd> lowers;  // opened on first use
  bool lowers_opened = false;
  // Directory modes and times, applied at the end, deepest first (a restrictive mode must not
  // stop the creation of the directory's content; its mtime must come after that content).
  std::map<std::string, DirMeta> deferred;
};

class Extractor {
 public:
  Extractor(std::span<const ExtractTarget> targets, const ExtractOptions& options,
            const std::string& source)
      : options_(options), source_(source) {
    preserve_owners_ = options.preserve_owners.value_or(::geteuid() == 0);
    is_root_ = ::geteuid() == 0;
    for (const auto& t : targets) {
      TargetState s;
      s.spec = &t;
      targets_.push_back(std::move(s));
    }
  }

  Result<ExtractStats> Run(SequentialFile& tar);

 private:
  Status OpenTargets();
  Status ApplyEntry(struct archive* a, struct archive_entry* e);
  Status ReadMeta(struct archive_entry* e, const std::string& name, Meta* meta);
  Status ApplyWhiteout(TargetState& t, const WhiteoutName& w);
  Status ClearLower(int dir_fd, const std::string& dir_path);
  Status PrepareSlot(int parent, const std::string& name, const std::string& path, bool want_dir,
                     bool* existing_dir);
  // Opens the parent of the non-directory entry `path` (creating missing directories) and
  // clears the slot for it, the last name going to *name.
  Result<UniqueFd> ClaimSlot(TargetState& t, const std::string& path, std::string* name);
  Status MakeDir(TargetState& t, const std::string& path, const Meta& meta);
  Status WriteFiles(struct archive* a, const std::string& path, const Meta& meta, uint64_t size);
  Status MakeSymlink(TargetState& t, const std::string& path, const std::string& target,
                     const Meta& meta);
  Status MakeHardlink(TargetState& t, const std::string& path, const std::string& target);
  Result<bool> ExistsInLowers(TargetState& t, const std::string& path);
  Status OpenLowers(TargetState& t);
  Status CopyFromLower(TargetState& t, const std::string& target, int parent,
                       const std::string& name, const std::string& path);
  Status MakeNode(TargetState& t, const std::string& path, mode_t type, dev_t dev,
                  const Meta& meta);
  Status SetOwner(int fd, const Meta& meta, const std::string& path);
  Status SetXattrs(int fd, const Meta& meta, const std::string& path);
  Status FinishDirs(TargetState& t);
  void Warn(const std::string& kind, const std::string& line);
  void AddLayerPath(const std::string& path);
  // The stream of the running extraction (Run), and whether it ended right after the last
  // entry's data, without that entry's padding and the end-of-archive blocks: some writers
  // (umoci insert, as Debian ships it) produce such layers. The content is complete and the
  // diffID covers the bytes as they are, so the layer is accepted (docs/extraction.md).
  StreamFeeder* feeder_ = nullptr;
  bool unpadded_end_ = false;

  const ExtractOptions& options_;
  std::string source_;
  bool preserve_owners_ = false;
  bool is_root_ = false;
  std::vector<TargetState> targets_;
  std::unique_ptr<std::byte[]> copy_buf_;
  // Every path this layer created, and all their ancestors: whiteouts never remove them.
  std::unordered_set<std::string> layer_paths_;
  // kOverlay: paths this layer whited out (a directory created there later must be opaque).
  std::unordered_set<std::string> whited_out_;
  std::map<std::string, std::pair<uint64_t, std::string>> warnings_;  // kind → count, first line
  ExtractStats stats_;
};

void Extractor::Warn(const std::string& kind, const std::string& line) {
  auto& w = warnings_[kind];
  if (w.first++ == 0) w.second = line;
}

void Extractor::AddLayerPath(const std::string& path) {
  std::string p = path;
  while (!p.empty()) {
    if (!layer_paths_.insert(p).second) break;  // its ancestors are in already
    p = std::string(EntryDir(p));
  }
}

Status Extractor::OpenTargets() {
  if (targets_.empty()) return Status(Code::kInvalidArgument, "extraction without a target");
  for (auto& t : targets_) {
    auto fd = OpenRootDir(t.spec->dir);
    if (!fd.ok()) return fd.status().WithContext("extraction target");
    t.root = std::move(fd).value();
  }
  return Status::OK();
}

Result<ExtractStats> Extractor::Run(SequentialFile& tar) {
  IMGSTORE_RETURN_IF_ERROR(OpenTargets());
  StreamFeeder feeder(tar, options_);
  feeder_ = &feeder;
  std::unique_ptr<struct archive, ArchiveDeleter> a(archive_read_new());
  if (!a) return Status(Code::kInternal, "archive_read_new failed");
  archive_read_support_format_tar(a.get());
  // No skip callback: skipped data must still be read, so that it is hashed.
  if (archive_read_open(a.get(), &feeder, nullptr, &StreamFeeder::Callback, nullptr) !=
      ARCHIVE_OK) {
    if (!feeder.status().ok()) return feeder.status();
    return Status(Code::kCorruption, "read tar " + source_ + ": " + archive_error_string(a.get()));
  }
  while (true) {
    struct archive_entry* e = nullptr;
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (!feeder.status().ok()) return feeder.status();
    if (r < ARCHIVE_WARN) {
      const char* msg = archive_error_string(a.get());
      return Status(Code::kCorruption, "read tar " + source_ + " after entry " +
                                           std::to_string(stats_.entries) + ": " +
                                           (msg ? msg : "malformed header"));
    }
    if (++stats_.entries > options_.limits.max_entries && options_.limits.max_entries != 0) {
      return Status(Code::kInvalidArgument, source_ +
                                                ": the layer has more entries than max_entries (" +
                                                std::to_string(options_.limits.max_entries) + ")");
    }
    if (options_.cancelled && options_.cancelled()) {
      return Status(Code::kCancelled, "extraction of " + source_ + " cancelled");
    }
    Status s = ApplyEntry(a.get(), e);
    if (!s.ok()) {
      if (!feeder.status().ok()) return feeder.status();
      return s;
    }
    if (unpadded_end_) break;
  }
  IMGSTORE_RETURN_IF_ERROR(feeder.Drain());
  for (auto& t : targets_) IMGSTORE_RETURN_IF_ERROR(FinishDirs(t));
  stats_.tar_bytes = feeder.bytes();
  stats_.diff_id = feeder.Finish();
  if (options_.expected_diff_id && *options_.expected_diff_id != stats_.diff_id) {
    return Status(Code::kCorruption, source_ + ": diffID mismatch: expected " +
                                         options_.expected_diff_id->ToString() + ", got " +
                                         stats_.diff_id.ToString());
  }
  if (options_.on_warning) {
    for (const auto& [kind, w] : warnings_) {
      std::string line = w.second;
      if (w.first > 1) line += " (and " + std::to_string(w.first - 1) + " more)";
      options_.on_warning(line);
    }
  }
  return stats_;
}

Status Extractor::ReadMeta(struct archive_entry* e, const std::string& name, Meta* meta) {
  meta->mode = archive_entry_mode(e) & 07777;
  int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
  if (uid < 0 || gid < 0 || uid >= 0xffffffffll || gid >= 0xffffffffll) {
    return Status(Code::kInvalidArgument, "entry " + Q(name) + " has an invalid owner " +
                                              std::to_string(uid) + ":" + std::to_string(gid));
  }
  meta->uid = static_cast<uid_t>(uid);
  meta->gid = static_cast<gid_t>(gid);
  meta->times[1].tv_sec = archive_entry_mtime(e);
  meta->times[1].tv_nsec = archive_entry_mtime_nsec(e);
  if (archive_entry_atime_is_set(e)) {
    meta->times[0].tv_sec = archive_entry_atime(e);
    meta->times[0].tv_nsec = archive_entry_atime_nsec(e);
  } else {
    meta->times[0] = meta->times[1];
  }
  if (!options_.xattrs) return Status::OK();
  uint64_t total = 0;
  archive_entry_xattr_reset(e);
  const char* xname = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  while (archive_entry_xattr_next(e, &xname, &value, &size) == ARCHIVE_OK) {
    total += std::strlen(xname) + size;
    if (options_.limits.max_xattr_bytes != 0 && total > options_.limits.max_xattr_bytes) {
      return Status(Code::kInvalidArgument,
                    "entry " + Q(name) + ": extended attributes exceed max_xattr_bytes (" +
                        std::to_string(options_.limits.max_xattr_bytes) + ")");
    }
    if (IsOverlayXattrName(xname)) {
      Warn("xattr-overlay", "ignored overlay attribute " + std::string(xname) + " of " + Q(name));
      continue;
    }
    meta->xattrs.emplace_back(xname, std::string(static_cast<const char*>(value), size));
  }
  return Status::OK();
}

Status Extractor::ApplyEntry(struct archive* a, struct archive_entry* e) {
  const char* raw = archive_entry_pathname(e);
  std::string raw_name = raw ? raw : "";
  auto cleaned = CleanEntryName(raw_name);
  if (!cleaned.ok()) return cleaned.status().WithContext(source_);
  const std::string& path = *cleaned;
  if (options_.limits.max_path_bytes != 0 && path.size() > options_.limits.max_path_bytes) {
    return Status(Code::kInvalidArgument, source_ + ": entry name of " +
                                              std::to_string(path.size()) +
                                              " bytes exceeds max_path_bytes (" +
                                              std::to_string(options_.limits.max_path_bytes) + ")");
  }
  auto ctx = [&](const Status& s) { return s.WithContext(source_ + ": entry " + Q(path)); };

  auto wh = ParseWhiteout(path);
  if (!wh.ok()) return wh.status().WithContext(source_);
  if (wh->kind != WhiteoutKind::kNone) {
    ++stats_.whiteouts;
    for (auto& t : targets_) {
      Status s = ApplyWhiteout(t, *wh);
      if (!s.ok()) return ctx(s);
    }
    return Status::OK();
  }

  mode_t type = archive_entry_filetype(e);
  const char* hardlink = archive_entry_hardlink(e);
  if (path.empty()) {
    // "./": the root itself. Its metadata belongs to whoever made the target; nothing to do.
    if (type == AE_IFDIR && hardlink == nullptr) return Status::OK();
    return Status(Code::kInvalidArgument,
                  source_ + ": entry " + Q(raw_name) + " names the root but is not a directory");
  }

  Meta meta;
  IMGSTORE_RETURN_IF_ERROR(ReadMeta(e, path, &meta).WithContext(source_));

  if (hardlink != nullptr) {
    auto target = CleanEntryName(hardlink);
    if (!target.ok()) return ctx(target.status().WithContext("hardlink target"));
    if (options_.limits.max_path_bytes != 0 && target->size() > options_.limits.max_path_bytes) {
      return ctx(Status(Code::kInvalidArgument, "hardlink target exceeds max_path_bytes"));
    }
    if (target->empty()) return ctx(Status(Code::kInvalidArgument, "hardlink to the root"));
    AddLayerPath(path);
    for (auto& t : targets_) IMGSTORE_RETURN_IF_ERROR(ctx(MakeHardlink(t, path, *target)));
    return Status::OK();
  }

  AddLayerPath(path);
  switch (type) {
    case AE_IFDIR:
      for (auto& t : targets_) IMGSTORE_RETURN_IF_ERROR(ctx(MakeDir(t, path, meta)));
      return Status::OK();
    case AE_IFREG: {
      int64_t size = archive_entry_size(e);
      if (size < 0) return ctx(Status(Code::kCorruption, "negative size"));
      uint64_t max = options_.limits.max_tar_bytes;
      if (max != 0 && static_cast<uint64_t>(size) > max) {
        return ctx(Status(Code::kInvalidArgument, "size " + std::to_string(size) +
                                                      " exceeds max_tar_bytes (" +
                                                      std::to_string(max) + ")"));
      }
      return ctx(WriteFiles(a, path, meta, static_cast<uint64_t>(size)));
    }
    case AE_IFLNK: {
      const char* target = archive_entry_symlink(e);
      std::string tgt = target ? target : "";
      if (tgt.empty()) return ctx(Status(Code::kInvalidArgument, "symlink with an empty target"));
      if (options_.limits.max_path_bytes != 0 && tgt.size() > options_.limits.max_path_bytes) {
        return ctx(Status(Code::kInvalidArgument, "symlink target exceeds max_path_bytes"));
      }
      for (auto& t : targets_) IMGSTORE_RETURN_IF_ERROR(ctx(MakeSymlink(t, path, tgt, meta)));
      return Status::OK();
    }
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO: {
      if (!preserve_owners_) {
        ++stats_.skipped;
        Warn("device", "skipped device nodes and fifos (not running as root), first " + Q(path));
        return Status::OK();
      }
      dev_t dev =
          type == AE_IFIFO ? 0 : makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
      for (auto& t : targets_) IMGSTORE_RETURN_IF_ERROR(ctx(MakeNode(t, path, type, dev, meta)));
      return Status::OK();
    }
    default:
      ++stats_.skipped;
      Warn("type", "skipped entries of unsupported type (sockets), first " + Q(path));
      return Status::OK();
  }
}

// Makes room for an entry at (parent, name): an existing entry is removed (a directory
// recursively) unless both are directories (*existing_dir is then set).
Status Extractor::PrepareSlot(int parent, const std::string& name, const std::string& path,
                              bool want_dir, bool* existing_dir) {
  if (existing_dir) *existing_dir = false;
  struct stat st;
  if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return Status::OK();
    return Errno("stat", path);
  }
  if (want_dir && S_ISDIR(st.st_mode)) {
    if (existing_dir) *existing_dir = true;
    return Status::OK();
  }
  return RemoveAllAt(parent, name.c_str());
}

Status Extractor::SetOwner(int fd, const Meta& meta, const std::string& path) {
  if (!preserve_owners_) return Status::OK();
  if (::fchown(fd, meta.uid, meta.gid) != 0) return Errno("chown", path);
  return Status::OK();
}

Status Extractor::SetXattrs(int fd, const Meta& meta, const std::string& path) {
  for (const auto& [name, value] : meta.xattrs) {
    if (!is_root_ && (name.starts_with("trusted.") || name.starts_with("security."))) {
      Warn("xattr-priv", "skipped privileged extended attributes (not running as root), first " +
                             name + " of " + Q(path));
      continue;
    }
    if (::fsetxattr(fd, name.c_str(), value.data(), value.size(), 0) != 0) {
      int err = errno;
      if (err == EPERM || err == ENOTSUP || err == EACCES || err == E2BIG || err == ERANGE ||
          err == EINVAL) {
        Warn("xattr-" + std::to_string(err),
             "skipped extended attributes the file system refused (" +
                 std::string(std::strerror(err)) + "), first " + name + " of " + Q(path));
        continue;
      }
      errno = err;
      return Errno("set extended attribute " + name + " of", path);
    }
  }
  return Status::OK();
}

Status Extractor::MakeDir(TargetState& t, const std::string& path, const Meta& meta) {
  std::string name;
  auto parent = OpenParentInRoot(t.root.get(), path, true, &name);
  if (!parent.ok()) return parent.status();
  bool existing = false;
  IMGSTORE_RETURN_IF_ERROR(PrepareSlot(parent->get(), name, path, true, &existing));
  if (!existing && ::mkdirat(parent->get(), name.c_str(), 0700) != 0) {
    return Errno("create directory", path);
  }
  auto dir = OpenChildDir(parent->get(), name.c_str());
  if (!dir.ok()) return dir.status();
  IMGSTORE_RETURN_IF_ERROR(SetOwner(dir->get(), meta, path));
  IMGSTORE_RETURN_IF_ERROR(SetXattrs(dir->get(), meta, path));
  if (t.spec->mode == WhiteoutMode::kOverlay && whited_out_.count(path)) {
    if (::fsetxattr(dir->get(), OverlayOpaqueXattr(), "y", 1, 0) != 0) {
      return Errno(std::string("set ") + OverlayOpaqueXattr() + " on", path);
    }
  }
  DirMeta& d = t.deferred[path];
  d.mode = meta.mode;
  d.times[0] = meta.times[0];
  d.times[1] = meta.times[1];
  return Status::OK();
}

Status Extractor::WriteFiles(struct archive* a, const std::string& path, const Meta& meta,
                             uint64_t size) {
  std::vector<UniqueFd> fds;
  fds.reserve(targets_.size());
  for (auto& t : targets_) {
    std::string name;
    auto parent = ClaimSlot(t, path, &name);
    if (!parent.ok()) return parent.status();
    int fd = ::openat(parent->get(), name.c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return Errno("create", path);
    fds.emplace_back(fd);
  }
  uint64_t end = 0, since_check = 0;
  while (true) {
    const void* buf = nullptr;
    size_t len = 0;
    la_int64_t offset = 0;
    int r = archive_read_data_block(a, &buf, &len, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      if (end == size && feeder_ != nullptr && feeder_->at_end() && feeder_->status().ok()) {
        unpadded_end_ = true;  // every byte of the entry came; only its padding is missing
        break;
      }
      const char* msg = archive_error_string(a);
      return Status(Code::kCorruption, std::string("read data: ") + (msg ? msg : "failed"));
    }
    if (offset < 0 || static_cast<uint64_t>(offset) + len > size) {
      return Status(Code::kCorruption, "data beyond the entry's size");
    }
    for (auto& fd : fds) {
      const char* p = static_cast<const char*>(buf);
      size_t left = len;
      off_t at = offset;
      while (left > 0) {
        ssize_t w = ::pwrite(fd.get(), p, left, at);
        if (w < 0) {
          if (errno == EINTR) continue;
          return Errno("write", path);
        }
        p += w;
        left -= static_cast<size_t>(w);
        at += w;
      }
    }
    end = std::max<uint64_t>(end, static_cast<uint64_t>(offset) + len);
    stats_.file_bytes += len;
    since_check += len;
    if (since_check >= kCancelCheckBytes) {
      since_check = 0;
      if (options_.cancelled && options_.cancelled()) {
        return Status(Code::kCancelled, "extraction of " + source_ + " cancelled");
      }
    }
  }
  for (auto& fd : fds) {
    // A sparse file's hole at the end is not a data block.
    if (end < size && ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
      return Errno("truncate", path);
    }
    IMGSTORE_RETURN_IF_ERROR(SetOwner(fd.get(), meta, path));
    IMGSTORE_RETURN_IF_ERROR(SetXattrs(fd.get(), meta, path));
    if (::fchmod(fd.get(), meta.mode) != 0) return Errno("chmod", path);
    if (::futimens(fd.get(), meta.times) != 0) return Errno("set times of", path);
    if (::close(fd.release()) != 0) return Errno("close", path);
  }
  return Status::OK();
}

Result<UniqueFd> Extractor::ClaimSlot(TargetState& t, const std::string& path, std::string* name) {
  auto parent = OpenParentInRoot(t.root.get(), path, true, name);
  if (!parent.ok()) return parent.status();
  IMGSTORE_RETURN_IF_ERROR(PrepareSlot(parent->get(), *name, path, false, nullptr));
  t.deferred.erase(path);
  return parent;
}

Status Extractor::MakeSymlink(TargetState& t, const std::string& path, const std::string& target,
                              const Meta& meta) {
  std::string name;
  auto parent = ClaimSlot(t, path, &name);
  if (!parent.ok()) return parent.status();
  if (::symlinkat(target.c_str(), parent->get(), name.c_str()) != 0) {
    return Errno("create symlink", path);
  }
  if (preserve_owners_ &&
      ::fchownat(parent->get(), name.c_str(), meta.uid, meta.gid, AT_SYMLINK_NOFOLLOW) != 0) {
    return Errno("chown", path);
  }
  if (::utimensat(parent->get(), name.c_str(), meta.times, AT_SYMLINK_NOFOLLOW) != 0) {
    return Errno("set times of", path);
  }
  return Status::OK();
}

Status Extractor::MakeHardlink(TargetState& t, const std::string& path, const std::string& target) {
  std::string name;
  auto parent = OpenParentInRoot(t.root.get(), path, true, &name);
  if (!parent.ok()) return parent.status();
  std::string tname;
  auto tparent = OpenParentInRoot(t.root.get(), target, false, &tname);
  struct stat st;
  bool found =
      tparent.ok() && ::fstatat(tparent->get(), tname.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  if (!found && (tparent.ok() || tparent.status().code() == Code::kNotFound)) {
    if (t.spec->mode == WhiteoutMode::kOverlay && !t.spec->lower_dirs.empty()) {
      IMGSTORE_RETURN_IF_ERROR(PrepareSlot(parent->get(), name, path, false, nullptr));
      t.deferred.erase(path);
      return CopyFromLower(t, target, parent->get(), name, path);
    }
    return Status(Code::kInvalidArgument,
                  "hardlink target " + Q(target) + " does not exist in the layer's root");
  }
  if (!tparent.ok()) return tparent.status().WithContext("hardlink target");
  if (!S_ISREG(st.st_mode)) {
    return Status(Code::kInvalidArgument,
                  "hardlink target " + Q(target) + " is not a regular file");
  }
  struct stat cur;
  if (::fstatat(parent->get(), name.c_str(), &cur, AT_SYMLINK_NOFOLLOW) == 0 &&
      cur.st_ino == st.st_ino && cur.st_dev == st.st_dev) {
    return Status::OK();  // already that file
  }
  IMGSTORE_RETURN_IF_ERROR(PrepareSlot(parent->get(), name, path, false, nullptr));
  t.deferred.erase(path);
  if (::linkat(tparent->get(), tname.c_str(), parent->get(), name.c_str(), 0) != 0) {
    return Errno("create hardlink", path);
  }
  return Status::OK();
}

Status Extractor::CopyFromLower(TargetState& t, const std::string& target, int parent,
                                const std::string& name, const std::string& path) {
  IMGSTORE_RETURN_IF_ERROR(OpenLowers(t));
  for (auto& lower : t.lowers) {
    std::string sname;
    auto sparent = OpenParentInRoot(lower.get(), target, false, &sname);
    if (!sparent.ok()) continue;
    int sfd = ::openat(sparent->get(), sname.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (sfd < 0) continue;
    UniqueFd src(sfd);
    struct stat st;
    if (::fstat(src.get(), &st) != 0) return Errno("stat lower file", target);
    if (!S_ISREG(st.st_mode)) {
      if (S_ISCHR(st.st_mode) && st.st_rdev == 0) break;  // whited out below: not there
      continue;
    }
    int dfd =
        ::openat(parent, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (dfd < 0) return Errno("create", path);
    UniqueFd dst(dfd);
    if (!copy_buf_) copy_buf_.reset(new std::byte[kReadBuffer]);
    while (true) {
      ssize_t n = ::read(src.get(), copy_buf_.get(), kReadBuffer);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Errno("read lower file", target);
      }
      if (n == 0) break;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::write(dst.get(), copy_buf_.get() + off, static_cast<size_t>(n - off));
        if (w < 0) {
          if (errno == EINTR) continue;
          return Errno("write", path);
        }
        off += w;
      }
    }
    if (preserve_owners_ && ::fchown(dst.get(), st.st_uid, st.st_gid) != 0) {
      return Errno("chown", path);
    }
    if (options_.xattrs) {
      std::string names(65536, '\0');
      ssize_t ln = ::flistxattr(src.get(), names.data(), names.size());
      for (ssize_t i = 0; ln > 0 && i < ln;) {
        std::string xname(names.data() + i);
        i += static_cast<ssize_t>(xname.size()) + 1;
        if (IsOverlayXattrName(xname)) continue;
        std::string value(65536, '\0');
        ssize_t vn = ::fgetxattr(src.get(), xname.c_str(), value.data(), value.size());
        if (vn < 0) continue;
        value.resize(static_cast<size_t>(vn));
        Meta m;
        m.xattrs.emplace_back(xname, value);
        IMGSTORE_RETURN_IF_ERROR(SetXattrs(dst.get(), m, path));
      }
    }
    if (::fchmod(dst.get(), st.st_mode & 07777) != 0) return Errno("chmod", path);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (::futimens(dst.get(), times) != 0) return Errno("set times of", path);
    return Status::OK();
  }
  return Status(Code::kInvalidArgument, "hardlink target " + Q(target) +
                                            " is neither in the layer nor in its lower layers");
}

Status Extractor::MakeNode(TargetState& t, const std::string& path, mode_t type, dev_t dev,
                           const Meta& meta) {
  std::string name;
  auto parent = ClaimSlot(t, path, &name);
  if (!parent.ok()) return parent.status();
  mode_t kind = type == AE_IFCHR ? S_IFCHR : type == AE_IFBLK ? S_IFBLK : S_IFIFO;
  if (::mknodat(parent->get(), name.c_str(), kind | 0600, dev) != 0) {
    return Errno("create device node", path);
  }
  // O_PATH opens the node without opening the device (or blocking on the fifo).
  int fd = ::openat(parent->get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Errno("open", path);
  UniqueFd node(fd);
  if (preserve_owners_ && ::fchownat(node.get(), "", meta.uid, meta.gid, AT_EMPTY_PATH) != 0) {
    return Errno("chown", path);
  }
  // fchmod does not take an O_PATH descriptor; the /proc path of the descriptor names exactly
  // the node just made, whatever happens to its name.
  std::string proc = "/proc/self/fd/" + std::to_string(node.get());
  if (::chmod(proc.c_str(), meta.mode) != 0) return Errno("chmod", path);
  if (::utimensat(AT_FDCWD, proc.c_str(), meta.times, 0) != 0) return Errno("set times of", path);
  return Status::OK();
}

Status Extractor::ApplyWhiteout(TargetState& t, const WhiteoutName& w) {
  // A whiteout names its path literally: a symlink on the way (which could lead anywhere in the
  // root, e.g. to "/") makes it name nothing, as it would in an overlay lower directory.
  auto skip_through_symlink = [&](const Status& s) {
    Warn("whiteout-symlink", "ignored whiteouts below a symlink or a non-directory, first " +
                                 Q(w.dir) + ": " + s.message());
    return Status::OK();
  };
  if (t.spec->mode == WhiteoutMode::kOverlay) {
    if (w.kind == WhiteoutKind::kRemove && !layer_paths_.count(w.path)) {
      auto below = ExistsInLowers(t, w.path);
      if (!below.ok()) return below.status();
      if (!*below) return Status::OK();  // nothing to hide
    }
    auto dir = OpenDirInRoot(t.root.get(), w.dir, true, 0755, nullptr, Resolve::kNoSymlinks);
    if (!dir.ok()) {
      if (dir.status().code() == Code::kFailedPrecondition) {
        return skip_through_symlink(dir.status());
      }
      return dir.status();
    }
    if (w.kind == WhiteoutKind::kOpaque) {
      if (::fsetxattr(dir->get(), OverlayOpaqueXattr(), "y", 1, 0) != 0) {
        return Errno(std::string("set ") + OverlayOpaqueXattr() + " on", w.dir);
      }
      return Status::OK();
    }
    std::string name(EntryBase(w.path));
    if (layer_paths_.count(w.path)) {
      // The layer's own entry stays; below a directory of it, the lower content is hidden.
      auto child = OpenChildDir(dir->get(), name.c_str());
      if (child.ok() && ::fsetxattr(child->get(), OverlayOpaqueXattr(), "y", 1, 0) != 0) {
        return Errno(std::string("set ") + OverlayOpaqueXattr() + " on", w.path);
      }
      return Status::OK();
    }
    whited_out_.insert(w.path);
    IMGSTORE_RETURN_IF_ERROR(RemoveAllAt(dir->get(), name.c_str()));
    if (::mknodat(dir->get(), name.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
      return Errno("create whiteout", w.path);
    }
    return Status::OK();
  }
  // kApply: remove from the lower layers only.
  auto dir = OpenDirInRoot(t.root.get(), w.dir, false, 0755, nullptr, Resolve::kNoSymlinks);
  if (!dir.ok()) {
    Code c = dir.status().code();
    if (c == Code::kNotFound) return Status::OK();  // nothing to remove
    if (c == Code::kFailedPrecondition) return skip_through_symlink(dir.status());
    return dir.status();
  }
  if (w.kind == WhiteoutKind::kOpaque) return ClearLower(dir->get(), w.dir);
  std::string name(EntryBase(w.path));
  if (layer_paths_.count(w.path)) {
    auto child = OpenChildDir(dir->get(), name.c_str());
    if (!child.ok()) return Status::OK();  // the layer's own non-directory stays
    return ClearLower(child->get(), w.path);
  }
  return RemoveAllAt(dir->get(), name.c_str());
}

Result<bool> Extractor::ExistsInLowers(TargetState& t, const std::string& path) {
  if (t.spec->lower_dirs.empty()) return true;  // unknown: assume it may exist
  IMGSTORE_RETURN_IF_ERROR(OpenLowers(t));
  for (auto& lower : t.lowers) {
    auto dir =
        OpenDirInRoot(lower.get(), EntryDir(path), false, 0755, nullptr, Resolve::kNoSymlinks);
    if (!dir.ok()) continue;
    struct stat st;
    std::string name(EntryBase(path));
    if (::fstatat(dir->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    return !(S_ISCHR(st.st_mode) && st.st_rdev == 0);  // whited out below: gone already
  }
  return false;
}

Status Extractor::OpenLowers(TargetState& t) {
  if (t.lowers_opened) return Status::OK();
  t.lowers_opened = true;
  for (const auto& dir : t.spec->lower_dirs) {
    auto fd = OpenRootDir(dir);
    if (!fd.ok()) return fd.status().WithContext("lower layer directory");
    t.lowers.push_back(std::move(fd).value());
  }
  return Status::OK();
}

// Removes everything below dir_fd that this layer did not create (descending into the layer's
// own directories).
Status Extractor::ClearLower(int dir_fd, const std::string& dir_path) {
  std::vector<unsigned char> types;
  auto names = ListDirAt(dir_fd, &types);
  if (!names.ok()) return names.status().WithContext(Q(dir_path));
  for (size_t i = 0; i < names->size(); ++i) {
    const std::string& n = (*names)[i];
    std::string p = JoinPath(dir_path, n);
    if (!layer_paths_.count(p)) {
      IMGSTORE_RETURN_IF_ERROR(RemoveAllAt(dir_fd, n.c_str()));
      continue;
    }
    if (types[i] != DT_DIR) continue;
    auto child = OpenChildDir(dir_fd, n.c_str());
    if (!child.ok()) return child.status();
    IMGSTORE_RETURN_IF_ERROR(ClearLower(child->get(), p));
  }
  return Status::OK();
}

Status Extractor::FinishDirs(TargetState& t) {
  std::vector<const std::pair<const std::string, DirMeta>*> dirs;
  dirs.reserve(t.deferred.size());
  for (const auto& d : t.deferred) dirs.push_back(&d);
  std::stable_sort(dirs.begin(), dirs.end(),
                   [](auto* x, auto* y) { return Depth(x->first) > Depth(y->first); });
  for (auto* d : dirs) {
    std::string name;
    auto parent = OpenParentInRoot(t.root.get(), d->first, false, &name);
    if (!parent.ok()) continue;  // removed by a later entry
    auto dir = OpenChildDir(parent->get(), name.c_str());
    if (!dir.ok()) continue;
    if (::fchmod(dir->get(), d->second.mode) != 0) return Errno("chmod", d->first);
    if (::futimens(dir->get(), d->second.times) != 0) return Errno("set times of", d->first);
  }
  t.deferred.clear();
  return Status::OK();
}

}  // namespace

const char* OverlayOpaqueXattr() {
  return ::geteuid() == 0 ? "trusted.overlay.opaque" : "user.overlay.opaque";
}

Result<ExtractStats> ExtractLayer(SequentialFile& tar, std::span<const ExtractTarget> targets,
                                  const ExtractOptions& options) {
  Extractor x(targets, options, tar.path());
  return x.Run(tar);
}

Result<ExtractStats> ExtractLayerBlob(std::unique_ptr<SequentialFile> blob, Compression compression,
                                      std::span<const ExtractTarget> targets,
                                      const ExtractOptions& options) {
  auto file = OpenDecompressed(std::move(blob), compression, options.limits.decompress);
  if (!file.ok()) return file.status();
  return ExtractLayer(**file, targets, options);
}

}  // namespace imgstore::layers
