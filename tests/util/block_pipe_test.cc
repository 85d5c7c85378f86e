// BlockPipe: blocks arrive in order and the producer's end after them, an error included; the
// producer never holds more than the pool; a cancel by the consumer wakes a waiting producer.
#include "util/block_pipe.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace imgstore {
namespace {

void Fill(BlockPipe::Block* b, const std::string& text) {
  std::memcpy(b->data.get(), text.data(), text.size());
  b->size = text.size();
}

std::string Text(const BlockPipe::Block* b) {
  return std::string(reinterpret_cast<const char*>(b->data.get()), b->size);
}

// Runs `produce` on a thread and receives everything the pipe delivers.
std::vector<std::string> ReceiveAll(BlockPipe& pipe, const std::function<void()>& produce) {
  std::thread producer(produce);
  std::vector<std::string> got;
  while (BlockPipe::Block* b = pipe.Receive()) {
    got.push_back(Text(b));
    pipe.Return(b);
  }
  producer.join();
  return got;
}

TEST(BlockPipeTest, BlocksArriveInOrderThenTheEnd) {
  BlockPipe pipe(3, 16);
  std::vector<std::string> sent;
  for (int i = 0; i < 200; ++i) sent.push_back("block " + std::to_string(i));
  std::vector<std::string> got = ReceiveAll(pipe, [&] {
    for (const std::string& s : sent) {
      BlockPipe::Block* b = pipe.Free();
      ASSERT_NE(b, nullptr);
      ASSERT_EQ(b->capacity, 16u);
      Fill(b, s);
      pipe.Send(b);
    }
    pipe.Finish(Status::OK());
  });
  EXPECT_EQ(got, sent);
  EXPECT_TRUE(pipe.end().ok());
}

TEST(BlockPipeTest, AnErrorArrivesAfterTheBlocksSentBeforeIt) {
  BlockPipe pipe(2, 8);
  std::vector<std::string> got = ReceiveAll(pipe, [&] {
    for (const char* s : {"a", "b", "c"}) {
      BlockPipe::Block* b = pipe.Free();
      Fill(b, s);
      pipe.Send(b);
    }
    BlockPipe::Block* unused = pipe.Free();
    pipe.Return(unused);
    pipe.Finish(Status(Code::kIOError, "read x: broken"));
  });
  EXPECT_EQ(got, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(pipe.end().code(), Code::kIOError);
  EXPECT_EQ(pipe.end().message(), "read x: broken");
}

TEST(BlockPipeTest, TheProducerGetsOnlyThePoolsBlocks) {
  BlockPipe pipe(2, 8);
  BlockPipe::Block* a = pipe.Free();
  BlockPipe::Block* b = pipe.Free();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(a, b);
  Fill(a, "first");
  pipe.Send(a);
  // The pool is empty: the third Free waits until the consumer gives `a` back, and gets it.
  BlockPipe::Block* third = nullptr;
  std::thread producer([&] { third = pipe.Free(); });
  BlockPipe::Block* r = pipe.Receive();
  ASSERT_EQ(r, a);
  EXPECT_EQ(Text(r), "first");
  pipe.Return(r);
  producer.join();
  EXPECT_EQ(third, a);
  EXPECT_EQ(third->size, 0u) << "a returned block comes back empty";
}

TEST(BlockPipeTest, CancelWakesAProducerWaitingForABlockAndStopsTheStream) {
  BlockPipe pipe(1, 8);
  BlockPipe::Block* only = pipe.Free();
  Fill(only, "x");
  pipe.Send(only);
  BlockPipe::Block* waited = only;
  std::thread producer([&] { waited = pipe.Free(); });  // nothing free: waits
  pipe.Cancel();
  producer.join();
  EXPECT_EQ(waited, nullptr);
  EXPECT_EQ(pipe.Free(), nullptr);
  EXPECT_EQ(pipe.Receive(), nullptr) << "a cancelled pipe delivers nothing more";
}

}  // namespace
}  // namespace imgstore
