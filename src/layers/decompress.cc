// Streaming gzip (ISA-L or zlib) and zstd (libzstd) decompression of layer blobs behind the
// SequentialFile interface, with the bomb bounds of DecompressLimits checked as bytes come out.
#include "layers/decompress.h"

#ifdef IMGSTORE_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "util/quote.h"

namespace imgstore::layers {

std::string_view CompressionName(Compression c) {
  switch (c) {
    case Compression::kNone:
      return "none";
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
  }
  return "none";
}

Result<Compression> CompressionOfMediaType(std::string_view media_type) {
  // The layer types of OCI image-spec v1.1 (descriptor.md, layer.md) and Docker v2s2. Exact
  // comparison, as registries compare media types.
  static constexpr std::pair<std::string_view, Compression> kTypes[] = {
      {"application/vnd.oci.image.layer.v1.tar", Compression::kNone},
      {"application/vnd.oci.image.layer.v1.tar+gzip", Compression::kGzip},
      {"application/vnd.oci.image.layer.v1.tar+zstd", Compression::kZstd},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar", Compression::kNone},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Compression::kGzip},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", Compression::kZstd},
      {"application/vnd.docker.image.rootfs.diff.tar", Compression::kNone},
      {"application/vnd.docker.image.rootfs.diff.tar.gzip", Compression::kGzip},
      {"application/vnd.docker.image.rootfs.foreign.diff.tar", Compression::kNone},
      {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Compression::kGzip},
  };
  for (const auto& [type, c] : kTypes) {
    if (media_type == type) return c;
  }
  if (media_type.ends_with("+encrypted")) {
    return Status(Code::kUnsupported,
                  "layer media type " + Quote(media_type) + ": encrypted layers are not supported");
  }
  return Status(Code::kUnsupported,
                "layer media type " + Quote(media_type) + " has no compression imgstore knows");
}

namespace {

bool StartsWith(std::span<const std::byte> head, std::initializer_list<unsigned char> magic) {
  if (head.size() < magic.size()) return false;
  size_t i = 0;
  for (unsigned char m : magic) {
    if (head[i++] != std::byte{m}) return false;
  }
  return true;
}

}  // namespace

Compression SniffCompression(std::span<const std::byte> head) {
  if (StartsWith(head, {0x1f, 0x8b})) return Compression::kGzip;
  if (StartsWith(head, {0x28, 0xb5, 0x2f, 0xfd})) return Compression::kZstd;
  return Compression::kNone;
}

std::string_view SniffUnsupportedCompression(std::span<const std::byte> head) {
  if (StartsWith(head, {'B', 'Z', 'h'})) return "bzip2";
  if (StartsWith(head, {0xfd, '7', 'z', 'X', 'Z', 0x00})) return "xz";
  return "";
}

namespace {

// Compressed bytes read from the source at a time (ZSTD_DStreamInSize() is 128 KiB + a block
// header; zlib has no preference).
constexpr size_t kInputBufferBytes = 128 * 1024;

// The part common to both formats: the input buffer, the counters, the bounds and the sticky
// error. A subclass implements Step().
class Decompressor : public SequentialFile {
 public:
  Decompressor(std::unique_ptr<SequentialFile> src, Compression c, const DecompressLimits& limits)
      : SequentialFile(src->path()),
        src_(std::move(src)),
        compression_(c),
        limits_(limits),
        in_(kInputBufferBytes) {}

  Result<size_t> Read(std::span<std::byte> buf) override {
    if (!error_.ok()) return error_;
    size_t filled = 0;
    while (filled < buf.size() && !finished_) {
      if (in_pos_ == in_end_ && !src_eof_) {
        Status st = Refill();
        if (!st.ok()) return Fail(st);
      }
      size_t consumed = 0;
      size_t produced = 0;
      Status st = Step(buf.subspan(filled), &consumed, &produced);
      if (!st.ok()) return Fail(st);
      in_pos_ += consumed;
      consumed_ += consumed;
      produced_ += produced;
      filled += produced;
      if (consumed == 0 && produced == 0 && !finished_ && in_pos_ != in_end_) {
        // Both libraries always take input they are offered; stopping here beats spinning.
        return Fail(Error(Code::kInternal, "the decompressor made no progress"));
      }
      st = CheckRatio();
      if (!st.ok()) return Fail(st);
    }
    return filled;
  }

  Status Skip(uint64_t n) override {
    std::vector<std::byte> scratch(static_cast<size_t>(std::min<uint64_t>(n, 64 * 1024)));
    while (n > 0) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(n, scratch.size()));
      Result<size_t> got = Read(std::span(scratch).first(want));
      if (!got.ok()) return got.status();
      if (*got == 0) break;
      n -= *got;
    }
    return Status::OK();
  }

 protected:
  // Decompresses from the unread input (in_pos_..in_end_, empty only at the end of the source)
  // into out (never empty). Reports the input bytes taken and output bytes made; sets finished_
  // when the stream is complete and the source exhausted.
  virtual Status Step(std::span<std::byte> out, size_t* consumed, size_t* produced) = 0;

  std::span<std::byte> input() { return std::span(in_).subspan(in_pos_, in_end_ - in_pos_); }
  bool at_end_of_source() const { return src_eof_ && in_pos_ == in_end_; }

  Status Error(Code code, std::string_view what) const {
    return Status(code, "decompress " + path() + " (" + std::string(CompressionName(compression_)) +
                            "): " + std::string(what));
  }
  Status Truncated() const {
    return Error(Code::kCorruption, "truncated stream: the data ends after " +
                                        std::to_string(consumed_) + " compressed bytes");
  }

  bool finished_ = false;

 private:
  Status Refill() {
    in_pos_ = 0;
    in_end_ = 0;
    Result<size_t> got = src_->Read(in_);
    if (!got.ok()) return got.status();
    in_end_ = *got;
    if (*got == 0) src_eof_ = true;
    return Status::OK();
  }

  Status CheckRatio() const {
    if (limits_.max_ratio == 0 || produced_ <= limits_.ratio_grace_bytes) return Status::OK();
    uint64_t in = std::max<uint64_t>(consumed_, 1);
    if (in > std::numeric_limits<uint64_t>::max() / limits_.max_ratio) return Status::OK();
    if (produced_ <= in * limits_.max_ratio) return Status::OK();
    return Error(Code::kInvalidArgument,
                 "refused as a decompression bomb: " + std::to_string(consumed_) +
                     " compressed bytes expanded to over " + std::to_string(produced_) +
                     " bytes, more than the limit max_ratio=" + std::to_string(limits_.max_ratio) +
                     " times");
  }

  Status Fail(Status st) {
    error_ = std::move(st);
    return error_;
  }

  std::unique_ptr<SequentialFile> src_;
  Compression compression_;
  DecompressLimits limits_;
  std::vector<std::byte> in_;
  size_t in_pos_ = 0;
  size_t in_end_ = 0;
  bool src_eof_ = false;
  uint64_t consumed_ = 0;
  uint64_t produced_ = 0;
  Status error_;
};

// What both gzip decoders share: members follow one another (gzip -d and Go's gzip.Reader read
// concatenated members as one stream, and pigz-style parallel compressors produce them).
class GzipMembers : public Decompressor {
 public:
  GzipMembers(std::unique_ptr<SequentialFile> src, const DecompressLimits& limits)
      : Decompressor(std::move(src), Compression::kGzip, limits) {}

 protected:
  // Readies the decoder for the next member.
  virtual Status Restart() = 0;

  // At the start of each Step: true when the last member has ended with the source (the stream
  // is finished); after a member that did not, the next one is started.
  Result<bool> Finished() {
    if (!member_done_) return false;
    if (at_end_of_source()) {
      finished_ = true;
      return true;
    }
    IMGSTORE_RETURN_IF_ERROR(Restart());
    member_done_ = false;
    ++members_;
    return false;
  }

  // A header that is wrong: at the start of the stream, or where another member would begin.
  Status BadHeader(bool nothing_decoded, const std::string& why) const {
    if (members_ > 0 && nothing_decoded) {
      return Error(Code::kCorruption, "corrupt stream: data after the end of gzip member " +
                                          std::to_string(members_) +
                                          " is not another gzip member (" + why + ")");
    }
    return Error(Code::kCorruption, "corrupt stream: " + why);
  }

  bool member_done_ = false;

 private:
  uint64_t members_ = 0;  // members completed before the current one
};

class GzipDecompressor final : public GzipMembers {
 public:
  GzipDecompressor(std::unique_ptr<SequentialFile> src, const DecompressLimits& limits)
      : GzipMembers(std::move(src), limits) {}
  ~GzipDecompressor() override {
    if (initialized_) inflateEnd(&z_);
  }

  Status Init() {
    // 16 + MAX_WBITS: gzip framing only (a zlib or raw deflate stream is not a gzip layer), with
    // the CRC-32 and length of each member checked by zlib.
    if (inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK) {
      return Error(Code::kInternal, "cannot initialize zlib");
    }
    initialized_ = true;
    return Status::OK();
  }

 protected:
  Status Step(std::span<std::byte> out, size_t* consumed, size_t* produced) override {
    *consumed = 0;
    *produced = 0;
    Result<bool> finished = Finished();
    if (!finished.ok() || *finished) return finished.status();
    std::span<std::byte> in = input();
    z_.next_in = reinterpret_cast<Bytef*>(in.data());
    z_.avail_in = static_cast<uInt>(in.size());
    z_.next_out = reinterpret_cast<Bytef*>(out.data());
    z_.avail_out =
        static_cast<uInt>(std::min<size_t>(out.size(), std::numeric_limits<uInt>::max()));
    uInt avail_out_before = z_.avail_out;
    int rc = inflate(&z_, Z_NO_FLUSH);
    *consumed = in.size() - z_.avail_in;
    *produced = avail_out_before - z_.avail_out;
    switch (rc) {
      case Z_OK:
        return Status::OK();
      case Z_STREAM_END:
        member_done_ = true;
        return Status::OK();
      case Z_BUF_ERROR:
        // No progress was possible: zlib wants input that the source does not have.
        if (at_end_of_source()) return Truncated();
        return Status::OK();
      case Z_MEM_ERROR:
        return Error(Code::kInternal, "out of memory");
      default:
        break;
    }
    return BadHeader(z_.total_out == 0, z_.msg != nullptr ? z_.msg : "invalid data");
  }

  Status Restart() override {
    if (inflateReset(&z_) != Z_OK) return Error(Code::kInternal, "cannot reset zlib");
    return Status::OK();
  }

 private:
  z_stream z_{};
  bool initialized_ = false;
};

#ifdef IMGSTORE_HAVE_ISAL
// An RFC 1952 member header, read a byte at a time so that it may be split across reads anywhere.
// ISA-L parses headers too, but 2.30 rejects a valid header CRC (FHCRC) when the header arrives
// in pieces; reading it here also names trailing garbage at once, as zlib does.
class GzipHeader {
 public:
  enum class Outcome { kMore, kDone, kNotGzip, kUnsupported, kBadCrc };

  // Takes bytes of `in` until the header is complete (kDone) or `in` is used up (kMore).
  Outcome Feed(std::span<const std::byte> in, size_t* used) {
    *used = 0;
    while (*used < in.size()) {
      const auto b = static_cast<uint8_t>(in[(*used)++]);
      if (stage_ != kHcrc) crc_ = static_cast<uint32_t>(crc32(crc_, &b, 1));
      switch (stage_) {
        case kFixed:
          if ((count_ == 0 && b != 0x1f) || (count_ == 1 && b != 0x8b)) return Outcome::kNotGzip;
          if ((count_ == 2 && b != 8) || (count_ == 3 && (b & 0xe0) != 0)) {
            return Outcome::kUnsupported;  // not deflate, or reserved flags
          }
          if (count_ == 3) flags_ = b;
          if (++count_ == 10) Advance();
          break;
        case kExtraLen:
          xlen_ |= static_cast<uint32_t>(b) << (8 * count_);
          if (++count_ == 2) Advance();
          break;
        case kExtra:
          if (--xlen_ == 0) Advance();
          break;
        case kName:
        case kComment:
          if (b == 0) Advance();
          break;
        case kHcrc:
          hcrc_ |= static_cast<uint32_t>(b) << (8 * count_);
          if (++count_ == 2) {
            if (hcrc_ != (crc_ & 0xffff)) return Outcome::kBadCrc;
            Advance();
          }
          break;
        case kDone:
          break;
      }
      if (stage_ == kDone) return Outcome::kDone;
    }
    return Outcome::kMore;
  }

 private:
  enum Stage { kFixed, kExtraLen, kExtra, kName, kComment, kHcrc, kDone };

  // To the next stage that the flags ask for (FEXTRA 4, FNAME 8, FCOMMENT 16, FHCRC 2).
  void Advance() {
    count_ = 0;
    for (;;) {
      stage_ = static_cast<Stage>(stage_ + 1);
      if ((stage_ == kExtraLen && (flags_ & 4) != 0) || (stage_ == kExtra && xlen_ > 0) ||
          (stage_ == kName && (flags_ & 8) != 0) || (stage_ == kComment && (flags_ & 16) != 0) ||
          (stage_ == kHcrc && (flags_ & 2) != 0) || stage_ == kDone) {
        return;
      }
    }
  }

  Stage stage_ = kFixed;
  uint32_t count_ = 0;  // bytes of the current fixed-size field read
  uint8_t flags_ = 0;
  uint32_t xlen_ = 0;
  uint32_t crc_ = 0;  // CRC-32 of the header bytes before FHCRC
  uint32_t hcrc_ = 0;
};

// The same contract as GzipDecompressor with ISA-L's inflate, which decodes deflate with SIMD
// and large lookup tables. The header is read by GzipHeader; ISA-L checks the trailer
// (ISAL_GZIP_NO_HDR_VER: CRC-32 and length).
class IsalGzipDecompressor final : public GzipMembers {
 public:
  IsalGzipDecompressor(std::unique_ptr<SequentialFile> src, const DecompressLimits& limits)
      : GzipMembers(std::move(src), limits), state_(std::make_unique<inflate_state>()) {}

  Status Init() { return Restart(); }

 protected:
  Status Step(std::span<std::byte> out, size_t* consumed, size_t* produced) override {
    *consumed = 0;
    *produced = 0;
    Result<bool> finished = Finished();
    if (!finished.ok() || *finished) return finished.status();
    std::span<std::byte> in = input();
    if (in_header_) {
      if (in.empty()) return Truncated();
      switch (header_.Feed(in, consumed)) {
        case GzipHeader::Outcome::kMore:
          return Status::OK();
        case GzipHeader::Outcome::kDone:
          in_header_ = false;
          return Status::OK();
        case GzipHeader::Outcome::kNotGzip:
          return BadHeader(true, "incorrect header check");
        case GzipHeader::Outcome::kUnsupported:
          return Error(Code::kCorruption, "corrupt stream: unknown compression method or flags");
        case GzipHeader::Outcome::kBadCrc:
          return Error(Code::kCorruption, "corrupt stream: header crc mismatch");
      }
    }
    state_->next_in = reinterpret_cast<uint8_t*>(in.data());
    state_->avail_in = static_cast<uint32_t>(std::min<size_t>(in.size(), UINT32_MAX));
    state_->next_out = reinterpret_cast<uint8_t*>(out.data());
    state_->avail_out = static_cast<uint32_t>(std::min<size_t>(out.size(), UINT32_MAX));
    const uint32_t avail_in_before = state_->avail_in;
    const uint32_t avail_out_before = state_->avail_out;
    int rc = isal_inflate(state_.get());
    *consumed = avail_in_before - state_->avail_in;
    *produced = avail_out_before - state_->avail_out;
    switch (rc) {
      case ISAL_DECOMP_OK:
      case ISAL_END_INPUT:
      case ISAL_OUT_OVERFLOW:
        // At the end of a member ISA-L hands back the input it read past the trailer.
        if (state_->block_state == ISAL_BLOCK_FINISH) {
          member_done_ = true;
        } else if (*produced == 0 && *consumed == 0 && at_end_of_source()) {
          return Truncated();
        }
        return Status::OK();
      case ISAL_INCORRECT_CHECKSUM:
        return Error(Code::kCorruption, "corrupt stream: incorrect data check or length");
      default:
        return Error(Code::kCorruption, "corrupt stream: invalid deflate data (ISA-L error " +
                                            std::to_string(rc) + ")");
    }
  }

  Status Restart() override {
    isal_inflate_init(state_.get());
    state_->crc_flag = ISAL_GZIP_NO_HDR_VER;
    header_ = GzipHeader();
    in_header_ = true;
    return Status::OK();
  }

 private:
  std::unique_ptr<inflate_state> state_;  // about 50 KiB of tables: on the heap
  GzipHeader header_;
  bool in_header_ = true;
};
#endif

class ZstdDecompressor final : public Decompressor {
 public:
  ZstdDecompressor(std::unique_ptr<SequentialFile> src, const DecompressLimits& limits)
      : Decompressor(std::move(src), Compression::kZstd, limits),
        window_log_(limits.zstd_max_window_log) {}
  ~ZstdDecompressor() override { ZSTD_freeDCtx(dctx_); }

  Status Init() {
    dctx_ = ZSTD_createDCtx();
    if (dctx_ == nullptr) return Error(Code::kInternal, "out of memory");
    ZSTD_bounds b = ZSTD_dParam_getBounds(ZSTD_d_windowLogMax);
    if (ZSTD_isError(b.error) || window_log_ < b.lowerBound || window_log_ > b.upperBound) {
      return Status(Code::kInvalidArgument,
                    "the limit zstd_max_window_log=" + std::to_string(window_log_) +
                        " is outside zstd's range [" + std::to_string(b.lowerBound) + ", " +
                        std::to_string(b.upperBound) + "]");
    }
    size_t rc = ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, window_log_);
    if (ZSTD_isError(rc)) return Error(Code::kInternal, ZSTD_getErrorName(rc));
    return Status::OK();
  }

 protected:
  Status Step(std::span<std::byte> out, size_t* consumed, size_t* produced) override {
    std::span<std::byte> in = input();
    if (in.empty() && frame_complete_) {
      // A frame ended exactly at the end of the source, with all its output delivered.
      finished_ = true;
      return Status::OK();
    }
    ZSTD_inBuffer zin{in.data(), in.size(), 0};
    ZSTD_outBuffer zout{out.data(), out.size(), 0};
    size_t rc = ZSTD_decompressStream(dctx_, &zout, &zin);
    *consumed = zin.pos;
    *produced = zout.pos;
    if (ZSTD_isError(rc)) {
      if (ZSTD_getErrorCode(rc) == ZSTD_error_frameParameter_windowTooLarge) {
        return Error(Code::kInvalidArgument,
                     "the frame needs a window larger than the limit zstd_max_window_log=" +
                         std::to_string(window_log_) + " (" +
                         std::to_string((uint64_t{1} << window_log_) >> 20) + " MiB)");
      }
      return Error(Code::kCorruption, std::string("corrupt stream: ") + ZSTD_getErrorName(rc));
    }
    // 0: a frame is complete and flushed. Anything else means more input or output is due.
    frame_complete_ = rc == 0;
    if (in.empty() && zout.pos == 0 && !frame_complete_) return Truncated();
    return Status::OK();
  }

 private:
  ZSTD_DCtx* dctx_ = nullptr;
  int window_log_;
  bool frame_complete_ = false;
};

}  // namespace

bool GzipDecoderAvailable(GzipDecoder d) {
#ifdef IMGSTORE_HAVE_ISAL
  (void)d;
  return true;
#else
  return d != GzipDecoder::kIsal;
#endif
}

Result<std::unique_ptr<SequentialFile>> OpenDecompressed(std::unique_ptr<SequentialFile> src,
                                                         Compression c,
                                                         const DecompressLimits& limits,
                                                         GzipDecoder gzip) {
  switch (c) {
    case Compression::kNone:
      return src;
    case Compression::kGzip: {
      if (!GzipDecoderAvailable(gzip)) {
        return Status(Code::kUnsupported, "this imgstore was built without ISA-L (libisal)");
      }
#ifdef IMGSTORE_HAVE_ISAL
      if (gzip != GzipDecoder::kZlib) {
        auto d = std::make_unique<IsalGzipDecompressor>(std::move(src), limits);
        IMGSTORE_RETURN_IF_ERROR(d->Init());
        return std::unique_ptr<SequentialFile>(std::move(d));
      }
#endif
      auto d = std::make_unique<GzipDecompressor>(std::move(src), limits);
      IMGSTORE_RETURN_IF_ERROR(d->Init());
      return std::unique_ptr<SequentialFile>(std::move(d));
    }
    case Compression::kZstd: {
      auto d = std::make_unique<ZstdDecompressor>(std::move(src), limits);
      IMGSTORE_RETURN_IF_ERROR(d->Init());
      return std::unique_ptr<SequentialFile>(std::move(d));
    }
  }
  return Status(Code::kInvalidArgument, "unknown compression");
}

}  // namespace imgstore::layers
