// TeeStream: one stream read once, by one thread, and handed to several readers, each with a
// SequentialFile of its own. A first unpack extracts a layer twice (into the layer cache and
// into the destination, two passes on two threads: docs/performance.md "Unpack and mount"), and
// decompressing the blob once for both instead of once per pass is what makes that cost about
// one `tar -xzf` on two cores.
//
// Bounded: the reader thread stays at most `max_blocks` blocks ahead of the slowest open reader,
// so memory is max_blocks × block_size whatever the stream's length. A reader that is destroyed
// before the end (its pass failed or was cancelled) is no longer waited for. An error of the
// source reaches every reader after the bytes that came before it.
//
// THREADS: each SequentialFile returned by Reader(i) is read by a thread of its own: the reading
// thread waits for the slowest open reader, so one thread reading two readers in turn can wait
// on itself. Destroy the readers before the TeeStream.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "util/env.h"
#include "util/status.h"

namespace imgstore::layers {

class TeeStream {
 public:
  // Starts reading `source` (on a thread of its own) for `readers` readers.
  TeeStream(std::unique_ptr<SequentialFile> source, size_t readers, size_t block_size = 1 << 20,
            size_t max_blocks = 4);
  ~TeeStream();  // stops the reading thread and joins it
  TeeStream(const TeeStream&) = delete;
  TeeStream& operator=(const TeeStream&) = delete;

  // The i-th reader (0 <= i < readers), once each: the whole stream from its first byte.
  std::unique_ptr<SequentialFile> Reader(size_t i);

 private:
  class ReaderFile;
  struct Block {
    std::unique_ptr<std::byte[]> data;
    size_t size = 0;
  };

  void Produce();
  // ReaderFile's side, under mu_: fills buf, or with an empty buf drops `skip` bytes.
  Result<size_t> Read(size_t reader, std::span<std::byte> buf, uint64_t skip = 0);
  void Close(size_t reader);

  std::unique_ptr<SequentialFile> source_;
  const size_t block_size_;
  const size_t max_blocks_;

  std::mutex mu_;
  std::condition_variable cv_;
  // Per reader: the blocks it has not finished, oldest first, and how far into the first.
  struct Queue {
    std::deque<std::shared_ptr<const Block>> blocks;
    size_t offset = 0;
    bool open = true;
  };
  std::vector<Queue> queues_;
  bool ended_ = false;  // the source's end (or error) is queued
  Status error_;        // the source's error, told after the blocks before it
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace imgstore::layers
