// LayerWriter: libarchive as a tar *writer* into a callback (never its disk writer), then
// gzip (zlib) or zstd, with the diffID and the blob digest hashed as the bytes pass.
#include "layers/layer_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "util/digest.h"

namespace imgstore::layers {
namespace {

constexpr size_t kBufBytes = 256 << 10;

// The compressed side: compresses, hashes the result, appends it to `out`.
class Compressor {
 public:
  Compressor(WritableFile& out, const LayerWriteOptions& options) : out_(out), options_(options) {}
  ~Compressor() {
    if (gz_ready_) deflateEnd(&gz_);
    if (zs_ != nullptr) ZSTD_freeCCtx(zs_);
  }
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  Status Init() {
    buf_.resize(kBufBytes);
    switch (options_.compression) {
      case Compression::kNone:
        return Status::OK();
      case Compression::kGzip:
        // windowBits 15 + 16: a gzip wrapper. Its header carries mtime 0 and no name, so equal
        // tars give equal blobs.
        if (deflateInit2(&gz_, options_.gzip_level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
            Z_OK) {
          return Status(Code::kInvalidArgument,
                        "gzip level " + std::to_string(options_.gzip_level) + " is not valid");
        }
        gz_ready_ = true;
        return Status::OK();
      case Compression::kZstd: {
        zs_ = ZSTD_createCCtx();
        if (zs_ == nullptr) return Status(Code::kInternal, "zstd: out of memory");
        size_t r = ZSTD_CCtx_setParameter(zs_, ZSTD_c_compressionLevel, options_.zstd_level);
        if (ZSTD_isError(r)) {
          return Status(Code::kInvalidArgument,
                        "zstd level " + std::to_string(options_.zstd_level) + " is not valid");
        }
        ZSTD_CCtx_setParameter(zs_, ZSTD_c_checksumFlag, 1);
        return Status::OK();
      }
    }
    return Status(Code::kInternal, "unknown compression");
  }

  Status Write(std::span<const std::byte> data, bool finish) {
    switch (options_.compression) {
      case Compression::kNone:
        return Emit(data);
      case Compression::kGzip: {
        gz_.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(data.data()));
        gz_.avail_in = static_cast<uInt>(data.size());
        for (;;) {
          gz_.next_out = reinterpret_cast<Bytef*>(buf_.data());
          gz_.avail_out = static_cast<uInt>(buf_.size());
          int r = deflate(&gz_, finish ? Z_FINISH : Z_NO_FLUSH);
          if (r == Z_STREAM_ERROR) return Status(Code::kInternal, "gzip: deflate failed");
          IMGSTORE_RETURN_IF_ERROR(Emit(std::span(buf_.data(), buf_.size() - gz_.avail_out)));
          if (finish ? r == Z_STREAM_END : (gz_.avail_in == 0 && gz_.avail_out != 0)) break;
        }
        return Status::OK();
      }
      case Compression::kZstd: {
        ZSTD_inBuffer in{data.data(), data.size(), 0};
        for (;;) {
          ZSTD_outBuffer outb{buf_.data(), buf_.size(), 0};
          size_t r = ZSTD_compressStream2(zs_, &outb, &in, finish ? ZSTD_e_end : ZSTD_e_continue);
          if (ZSTD_isError(r)) {
            return Status(Code::kInternal, std::string("zstd: ") + ZSTD_getErrorName(r));
          }
          IMGSTORE_RETURN_IF_ERROR(Emit(std::span(buf_.data(), outb.pos)));
          if (finish ? r == 0 : in.pos == in.size) break;
        }
        return Status::OK();
      }
    }
    return Status(Code::kInternal, "unknown compression");
  }

  Digest FinishDigest() { return hasher_.Finish(); }
  uint64_t size() const { return size_; }

 private:
  Status Emit(std::span<const std::byte> data) {
    if (data.empty()) return Status::OK();
    hasher_.Update(data);
    size_ += data.size();
    return out_.Append(data);
  }

  WritableFile& out_;
  const LayerWriteOptions& options_;
  std::vector<std::byte> buf_;
  z_stream gz_{};
  bool gz_ready_ = false;
  ZSTD_CCtx* zs_ = nullptr;
  Sha256Hasher hasher_;
  uint64_t size_ = 0;
};

class LayerWriterImpl : public LayerWriter {
 public:
  LayerWriterImpl(WritableFile& out, const LayerWriteOptions& options)
      : out_(out), options_(options), compressor_(out, options) {}
  ~LayerWriterImpl() override {
    if (archive_ != nullptr) archive_write_free(archive_);
  }

  Status Init() {
    IMGSTORE_RETURN_IF_ERROR(compressor_.Init());
    archive_ = archive_write_new();
    if (archive_ == nullptr) return Status(Code::kInternal, "libarchive: out of memory");
    // PAX "restricted": plain ustar headers unless an entry needs more (long names, xattrs,
    // large ids), which keeps layers small and readable by every tar.
    if (archive_write_set_format_pax_restricted(archive_) != ARCHIVE_OK ||
        archive_write_add_filter_none(archive_) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(archive_, 1) != ARCHIVE_OK ||
        archive_write_open2(archive_, this, nullptr, &LayerWriterImpl::WriteCb, nullptr, nullptr) !=
            ARCHIVE_OK) {
      return ArchiveError("start the tar");
    }
    return Status::OK();
  }

  Status Add(const LayerEntry& e, int data_fd) override {
    if (finished_) return Status(Code::kFailedPrecondition, "layer writer already finished");
    IMGSTORE_RETURN_IF_ERROR(Cancelled());
    archive_entry* entry = archive_entry_new();
    if (entry == nullptr) return Status(Code::kInternal, "libarchive: out of memory");
    struct Free {
      archive_entry* e;
      ~Free() { archive_entry_free(e); }
    } free_entry{entry};
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_mode(entry, e.mode);
    archive_entry_set_uid(entry, e.uid);
    archive_entry_set_gid(entry, e.gid);
    archive_entry_set_mtime(entry, e.mtime.tv_sec, e.mtime.tv_nsec);
    const bool is_file = S_ISREG(e.mode) && e.hardlink.empty();
    if (!e.hardlink.empty()) {
      archive_entry_set_hardlink(entry, e.hardlink.c_str());
      archive_entry_set_size(entry, 0);
    } else if (is_file) {
      archive_entry_set_size(entry, static_cast<la_int64_t>(e.size));
    } else {
      archive_entry_set_size(entry, 0);
    }
    if (S_ISLNK(e.mode)) archive_entry_set_symlink(entry, e.symlink.c_str());
    if (S_ISCHR(e.mode) || S_ISBLK(e.mode)) archive_entry_set_rdev(entry, e.rdev);
    for (const auto& [name, value] : e.xattrs) {
      archive_entry_xattr_add_entry(entry, name.c_str(), value.data(), value.size());
    }
    if (archive_write_header(archive_, entry) < ARCHIVE_WARN) return ArchiveError(e.path);
    ++entries_;
    if (is_file && e.size > 0) IMGSTORE_RETURN_IF_ERROR(CopyData(e, data_fd));
    return Status::OK();
  }

  Result<WrittenLayer> Finish() override {
    if (finished_) return Status(Code::kFailedPrecondition, "layer writer already finished");
    finished_ = true;
    if (archive_write_close(archive_) != ARCHIVE_OK) return ArchiveError("end the tar");
    IMGSTORE_RETURN_IF_ERROR(compressor_.Write({}, /*finish=*/true));
    WrittenLayer w;
    w.diff_id = tar_hasher_.Finish();
    w.tar_bytes = tar_bytes_;
    w.digest = compressor_.FinishDigest();
    w.size = compressor_.size();
    w.entries = entries_;
    w.empty = entries_ == 0;
    return w;
  }

 private:
  Status Cancelled() const {
    if (options_.cancelled && options_.cancelled()) {
      return Status(Code::kCancelled, "write layer " + out_.path() + ": cancelled");
    }
    return Status::OK();
  }

  Status CopyData(const LayerEntry& e, int fd) {
    if (buf_.empty()) buf_.resize(kBufBytes);
    uint64_t left = e.size;
    uint64_t since_check = 0;
    while (left > 0) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(left, buf_.size()));
      ssize_t n = read(fd, buf_.data(), want);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::FromErrno(errno, "read " + e.path);
      if (n == 0) {
        return Status(Code::kFailedPrecondition,
                      "read " + e.path + ": the file shrank while it was being read");
      }
      la_ssize_t w = archive_write_data(archive_, buf_.data(), static_cast<size_t>(n));
      if (w < 0) return ArchiveError(e.path);
      left -= static_cast<uint64_t>(n);
      since_check += static_cast<uint64_t>(n);
      if (since_check >= (8 << 20)) {
        since_check = 0;
        IMGSTORE_RETURN_IF_ERROR(Cancelled());
      }
    }
    return Status::OK();
  }

  // A failure of the sink (out_, the compressor) is the real error; libarchive only echoes it.
  Status ArchiveError(const std::string& what) {
    if (!sink_status_.ok()) return sink_status_;
    const char* msg = archive_error_string(archive_);
    return Status(Code::kInternal,
                  "write layer tar (" + what + "): " + (msg != nullptr ? msg : "libarchive error"));
  }

  static la_ssize_t WriteCb(struct archive* a, void* self_v, const void* data, size_t n) {
    auto* self = static_cast<LayerWriterImpl*>(self_v);
    std::span<const std::byte> bytes(static_cast<const std::byte*>(data), n);
    self->tar_hasher_.Update(bytes);
    self->tar_bytes_ += n;
    Status s = self->compressor_.Write(bytes, /*finish=*/false);
    if (!s.ok()) {
      self->sink_status_ = s;
      archive_set_error(a, EIO, "%s", s.message().c_str());
      return -1;
    }
    return static_cast<la_ssize_t>(n);
  }

  WritableFile& out_;
  const LayerWriteOptions& options_;
  Compressor compressor_;
  struct archive* archive_ = nullptr;
  Sha256Hasher tar_hasher_;
  uint64_t tar_bytes_ = 0;
  uint64_t entries_ = 0;
  bool finished_ = false;
  Status sink_status_;
  std::vector<char> buf_;
};

}  // namespace

Result<std::unique_ptr<LayerWriter>> LayerWriter::Create(WritableFile& out,
                                                         const LayerWriteOptions& options) {
  auto w = std::make_unique<LayerWriterImpl>(out, options);
  IMGSTORE_RETURN_IF_ERROR(w->Init());
  return std::unique_ptr<LayerWriter>(std::move(w));
}

}  // namespace imgstore::layers
