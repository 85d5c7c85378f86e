// TeeStream (see tee_stream.h): one reading thread, shared read-only blocks, a bounded queue per
// reader.
#include "layers/tee_stream.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace imgstore::layers {

class TeeStream::ReaderFile final : public SequentialFile {
 public:
  ReaderFile(TeeStream* tee, size_t index, std::string path)
      : SequentialFile(std::move(path)), tee_(tee), index_(index) {}
  ~ReaderFile() override { tee_->Close(index_); }

  Result<size_t> Read(std::span<std::byte> buf) override { return tee_->Read(index_, buf); }

  Status Skip(uint64_t n) override {
    std::span<std::byte> none;  // drop the bytes where they are queued, copying nothing
    return tee_->Read(index_, none, n).status();
  }

 private:
  TeeStream* const tee_;
  const size_t index_;
};

TeeStream::TeeStream(std::unique_ptr<SequentialFile> source, size_t readers, size_t block_size,
                     size_t max_blocks)
    : source_(std::move(source)),
      block_size_(std::max<size_t>(block_size, 1)),
      max_blocks_(std::max<size_t>(max_blocks, 1)),
      queues_(readers) {
  thread_ = std::thread([this] { Produce(); });
}

TeeStream::~TeeStream() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::unique_ptr<SequentialFile> TeeStream::Reader(size_t i) {
  return std::make_unique<ReaderFile>(this, i, source_->path());
}

void TeeStream::Produce() {
  while (true) {
    {
      // Wait for room in every open queue: the slowest open reader sets the pace.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        if (stop_) return true;
        for (const Queue& q : queues_) {
          if (q.open && q.blocks.size() >= max_blocks_) return false;
        }
        return true;
      });
      const bool any_open =
          std::any_of(queues_.begin(), queues_.end(), [](const Queue& q) { return q.open; });
      if (stop_ || !any_open) return;
    }
    auto block = std::make_shared<Block>();
    block->data.reset(new std::byte[block_size_]);  // not zeroed: the read fills it
    Result<size_t> n = source_->Read(std::span<std::byte>(block->data.get(), block_size_));
    std::lock_guard<std::mutex> lock(mu_);
    if (!n.ok() || *n == 0) {
      if (!n.ok()) error_ = n.status();
      ended_ = true;
      cv_.notify_all();
      return;
    }
    block->size = *n;
    std::shared_ptr<const Block> shared = std::move(block);
    for (Queue& q : queues_) {
      if (q.open) q.blocks.push_back(shared);
    }
    cv_.notify_all();
  }
}

Result<size_t> TeeStream::Read(size_t reader, std::span<std::byte> buf, uint64_t skip) {
  std::unique_lock<std::mutex> lock(mu_);
  Queue& q = queues_[reader];
  const uint64_t want = buf.empty() ? skip : buf.size();
  uint64_t filled = 0;
  // Fill buf (fewer bytes only at the end), from the blocks queued for this reader; or, with an
  // empty buf, drop `skip` bytes.
  while (filled < want) {
    cv_.wait(lock, [&] { return !q.blocks.empty() || ended_ || stop_; });
    if (q.blocks.empty()) break;  // the end, an error, or the TeeStream going away
    const Block& b = *q.blocks.front();
    const size_t n = static_cast<size_t>(std::min<uint64_t>(want - filled, b.size - q.offset));
    if (!buf.empty()) std::memcpy(buf.data() + filled, b.data.get() + q.offset, n);
    filled += n;
    q.offset += n;
    if (q.offset == b.size) {
      q.blocks.pop_front();
      q.offset = 0;
      cv_.notify_all();  // room for the reading thread
    }
  }
  if (filled > 0) return static_cast<size_t>(filled);
  if (!error_.ok()) return error_;
  if (stop_ && !ended_) return Status(Code::kCancelled, source_->path() + ": stream closed");
  return size_t{0};
}

void TeeStream::Close(size_t reader) {
  std::lock_guard<std::mutex> lock(mu_);
  queues_[reader].open = false;
  queues_[reader].blocks.clear();
  cv_.notify_all();
}

}  // namespace imgstore::layers
