// OpenTarArchive: a tar file that may be compressed. libarchive is used only as a stream
// decompressor ("raw" format); the tar itself is always parsed by TarReader.
#include <archive.h>
#include <archive_entry.h>

#include <cstdlib>
#include <utility>
#include <vector>

#include "transports/tar_reader.h"

namespace imgstore::transports {
namespace {

constexpr size_t kChunk = 1 << 20;

// Reads the compressed file through Env for libarchive.
struct ReadContext {
  SequentialFile* file = nullptr;
  std::vector<std::byte> buf = std::vector<std::byte>(kChunk);
  Status error;
};

la_ssize_t ReadCallback(struct archive* a, void* opaque, const void** out) {
  auto* ctx = static_cast<ReadContext*>(opaque);
  Result<size_t> n = ctx->file->Read(ctx->buf);
  if (!n.ok()) {
    ctx->error = n.status();
    archive_set_error(a, EIO, "%s", n.status().message().c_str());
    return -1;
  }
  *out = ctx->buf.data();
  return static_cast<la_ssize_t>(*n);
}

struct ArchiveDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};

// The decompressed file, read under the original archive's name.
class RenamedFile : public RandomAccessFile {
 public:
  RenamedFile(std::string name, std::unique_ptr<RandomAccessFile> file)
      : RandomAccessFile(std::move(name)), file_(std::move(file)) {}
  Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> buf) const override {
    return file_->ReadAt(offset, buf);
  }
  Result<uint64_t> Size() const override { return file_->Size(); }

 private:
  std::unique_ptr<RandomAccessFile> file_;
};

Result<std::shared_ptr<RandomAccessFile>> Decompress(Env* env, const std::string& path,
                                                     const TarArchiveOptions& options) {
  std::string dir = options.temp_dir;
  if (dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    dir = (t != nullptr && *t != '\0') ? t : "/tmp";
  }
  Result<std::unique_ptr<SequentialFile>> in = env->NewSequentialFile(path);
  if (!in.ok()) return in.status();
  Result<TempFile> tmp = TempFile::Create(env, dir, ".imgstore-archive-", 0600);
  if (!tmp.ok()) return tmp.status().WithContext("decompress " + path);
  // Opened for reading and unlinked before the first byte is written: the descriptors keep the
  // data, and a process killed while it decompresses leaves nothing behind.
  Result<std::unique_ptr<RandomAccessFile>> out = env->NewRandomAccessFile(tmp->path());
  if (!out.ok()) return out.status();
  IMGSTORE_RETURN_IF_ERROR(env->RemoveFile(tmp->path()));

  std::unique_ptr<struct archive, ArchiveDeleter> a(archive_read_new());
  if (!a) return Status(Code::kInternal, "archive_read_new failed");
  archive_read_support_filter_all(a.get());
  archive_read_support_format_raw(a.get());
  ReadContext ctx;
  ctx.file = in->get();
  auto fail = [&](const std::string& what) -> Status {
    if (!ctx.error.ok()) return ctx.error;
    const char* msg = archive_error_string(a.get());
    return Status(Code::kCorruption, "decompress " + path + ": " + what +
                                         (msg != nullptr ? std::string(": ") + msg : ""));
  };
  if (archive_read_open(a.get(), &ctx, nullptr, ReadCallback, nullptr) != ARCHIVE_OK) {
    return fail("cannot read the stream");
  }
  struct archive_entry* entry = nullptr;
  if (archive_read_next_header(a.get(), &entry) != ARCHIVE_OK) return fail("no data");
  std::vector<std::byte> buf(kChunk);
  uint64_t total = 0;
  while (true) {
    la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
    if (n < 0) return fail("corrupt compressed data");
    if (n == 0) break;
    total += static_cast<uint64_t>(n);
    if (options.max_decompressed_bytes != 0 && total > options.max_decompressed_bytes) {
      return Status(Code::kInvalidArgument, "decompress " + path + ": more than the limit of " +
                                                std::to_string(options.max_decompressed_bytes) +
                                                " bytes");
    }
    IMGSTORE_RETURN_IF_ERROR(
        tmp->Append(std::span<const std::byte>(buf).first(static_cast<size_t>(n))));
  }
  // Closes the writer (its name is already gone).
  IMGSTORE_RETURN_IF_ERROR(tmp->Abandon());
  return std::shared_ptr<RandomAccessFile>(
      std::make_shared<RenamedFile>(path, std::move(out).value()));
}

}  // namespace

Result<TarReader> OpenTarArchive(Env* env, const std::string& path,
                                 const TarArchiveOptions& options) {
  Result<TarReader> plain = TarReader::Open(env, path, options.limits);
  if (plain.ok() || plain.status().code() != Code::kUnsupported) return plain;
  Result<std::shared_ptr<RandomAccessFile>> file = Decompress(env, path, options);
  if (!file.ok()) return file.status();
  return TarReader::Open(std::move(file).value(), options.limits);
}

}  // namespace imgstore::transports
