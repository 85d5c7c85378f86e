// BlockPipe: a bounded, ordered hand-off of byte blocks from one producer thread to one consumer
// thread, so that reading a stream and working on what was read (hashing, writing, extracting)
// run on two cores with bounded memory.
//
// The pipe owns a fixed pool of blocks. The producer takes a free block (Free), fills it and
// sends it (Send); the consumer receives blocks in the order sent (Receive) and gives each back
// (Return) when done with it. The producer ends the stream with Finish(status): OK at its end,
// the error otherwise; the consumer sees it once it has received every block sent before. The
// consumer may give up at any time (Cancel): the producer's next Free returns nullptr.
//
// Thread-safe for one producer and one consumer.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "util/status.h"

namespace imgstore {

class BlockPipe {
 public:
  struct Block {
    std::unique_ptr<std::byte[]> data;
    size_t capacity = 0;
    size_t size = 0;  // bytes filled by the producer

    std::span<std::byte> buffer() { return {data.get(), capacity}; }
    std::span<const std::byte> bytes() const { return {data.get(), size}; }
  };

  BlockPipe(size_t blocks, size_t block_size);
  BlockPipe(const BlockPipe&) = delete;
  BlockPipe& operator=(const BlockPipe&) = delete;

  // Producer: a free block to fill (waits for one); nullptr once the consumer has cancelled.
  Block* Free();
  // Producer: sends a filled block (its size set) to the consumer.
  void Send(Block* block);
  // Producer: no more blocks. `end` is OK at the end of the stream, the error otherwise.
  void Finish(Status end);

  // Consumer: the next block in order (waits for one); nullptr once the producer has finished
  // and every block it sent has been received (end() then says how it finished) or after Cancel.
  Block* Receive();
  // Consumer: stops the stream; the producer's Free returns nullptr from now on.
  void Cancel();
  // Consumer, after Receive returned nullptr: the producer's Finish status.
  const Status& end() const { return end_; }

  // Either side: gives a block back to the free pool (the consumer when done with a received
  // block; the producer with a free block it does not send).
  void Return(Block* block);

 private:
  std::vector<Block> blocks_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Block*> free_;
  std::deque<Block*> full_;  // sent, in order
  bool finished_ = false;
  bool cancelled_ = false;
  Status end_;
};

}  // namespace imgstore
