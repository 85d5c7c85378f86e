// BlockPipe: the pool and the two queues, under one mutex.
#include "util/block_pipe.h"

#include <utility>

namespace imgstore {

BlockPipe::BlockPipe(size_t blocks, size_t block_size) : blocks_(blocks) {
  for (Block& b : blocks_) {
    b.data.reset(new std::byte[block_size]);
    b.capacity = block_size;
    free_.push_back(&b);
  }
}

BlockPipe::Block* BlockPipe::Free() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !free_.empty() || cancelled_; });
  if (cancelled_) return nullptr;
  Block* b = free_.back();
  free_.pop_back();
  return b;
}

void BlockPipe::Send(Block* block) {
  std::lock_guard<std::mutex> lock(mu_);
  full_.push_back(block);
  cv_.notify_all();
}

void BlockPipe::Finish(Status end) {
  std::lock_guard<std::mutex> lock(mu_);
  end_ = std::move(end);
  finished_ = true;
  cv_.notify_all();
}

BlockPipe::Block* BlockPipe::Receive() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !full_.empty() || finished_ || cancelled_; });
  if (cancelled_ || full_.empty()) return nullptr;
  Block* b = full_.front();
  full_.pop_front();
  return b;
}

void BlockPipe::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  cv_.notify_all();
}

void BlockPipe::Return(Block* block) {
  std::lock_guard<std::mutex> lock(mu_);
  block->size = 0;
  free_.push_back(block);
  cv_.notify_all();
}

}  // namespace imgstore
