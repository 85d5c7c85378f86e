// TeeStream: every reader gets the whole stream; a reader closed early stops nobody; an error of
// the source reaches every reader after the bytes before it; the reading thread stays at most
// max_blocks ahead of the slowest reader.
#include "layers/tee_stream.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>

namespace imgstore::layers {
namespace {

std::string RandomBytes(size_t n) {
  std::mt19937 rng(7);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// A source over `data` that counts its reads and may fail after `fail_after` bytes.
class CountingSource final : public SequentialFile {
 public:
  explicit CountingSource(std::string data, size_t fail_after = SIZE_MAX)
      : SequentialFile("mem:tee-source"), data_(std::move(data)), fail_after_(fail_after) {}
  Result<size_t> Read(std::span<std::byte> buf) override {
    ++reads;
    if (pos_ >= fail_after_) return Status(Code::kIOError, "read mem:tee-source: broken");
    size_t n = std::min({buf.size(), data_.size() - pos_, fail_after_ - pos_});
    std::memcpy(buf.data(), data_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  Status Skip(uint64_t) override { return Status(Code::kUnsupported, "not used"); }

  std::atomic<int> reads{0};

 private:
  std::string data_;
  size_t fail_after_;
  size_t pos_ = 0;
};

// Reads f to its end in pieces of `piece` bytes; the bytes, or the error.
Result<std::string> ReadAll(SequentialFile& f, size_t piece) {
  std::string out;
  std::vector<std::byte> buf(piece);
  while (true) {
    Result<size_t> n = f.Read(buf);
    if (!n.ok()) return n.status();
    if (*n == 0) return out;
    out.append(reinterpret_cast<const char*>(buf.data()), *n);
  }
}

TEST(TeeStreamTest, EveryReaderGetsTheWholeStream) {
  const std::string data = RandomBytes(3 * 1024 * 1024 + 77);
  TeeStream tee(std::make_unique<CountingSource>(data), 3, /*block_size=*/64 * 1024);
  std::vector<std::unique_ptr<SequentialFile>> readers;
  for (size_t i = 0; i < 3; ++i) readers.push_back(tee.Reader(i));
  EXPECT_EQ(readers[0]->path(), "mem:tee-source");
  std::vector<Result<std::string>> got(3, Status(Code::kInternal, "not read"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < 3; ++i) {
    // Read sizes smaller than, equal to and larger than a block.
    const size_t piece = std::vector<size_t>{1000, 64 * 1024, 200 * 1024}[i];
    threads.emplace_back([&, i, piece] { got[i] = ReadAll(*readers[i], piece); });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(got[i].ok()) << got[i].status().ToString();
    EXPECT_TRUE(*got[i] == data) << "reader " << i << " got " << got[i]->size() << " bytes";
  }
}

TEST(TeeStreamTest, SkipDropsBytesWithoutCopying) {
  const std::string data = RandomBytes(50000);
  TeeStream tee(std::make_unique<CountingSource>(data), 1, 4096);
  std::unique_ptr<SequentialFile> r = tee.Reader(0);
  ASSERT_TRUE(r->Skip(10001).ok());
  std::byte b[5];
  ASSERT_EQ(*r->Read(b), 5u);
  EXPECT_EQ(std::memcmp(b, data.data() + 10001, 5), 0);
  ASSERT_TRUE(r->Skip(1 << 20).ok());  // past the end is allowed
  EXPECT_EQ(*r->Read(b), 0u);
}

TEST(TeeStreamTest, AReaderClosedEarlyStopsNobody) {
  const std::string data = RandomBytes(1024 * 1024);
  TeeStream tee(std::make_unique<CountingSource>(data), 2, 4096, 2);
  std::unique_ptr<SequentialFile> quitter = tee.Reader(0);
  std::unique_ptr<SequentialFile> stayer = tee.Reader(1);
  std::byte some[100];
  ASSERT_EQ(*quitter->Read(some), 100u);
  quitter.reset();  // its pass failed, say
  Result<std::string> all = ReadAll(*stayer, 10000);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_TRUE(*all == data);
}

TEST(TeeStreamTest, ASourceErrorReachesEveryReaderAfterTheBytesBeforeIt) {
  const std::string data = RandomBytes(100000);
  TeeStream tee(std::make_unique<CountingSource>(data, 50000), 2, 4096);
  // Each reader on a thread of its own, as the extraction passes are (the reading thread waits
  // for the slowest reader, so one thread reading both in turn could wait on itself).
  auto read_twice = [&tee](size_t i, Result<size_t>* first, Status* second) {
    std::unique_ptr<SequentialFile> f = tee.Reader(i);
    std::vector<std::byte> buf(60000);
    *first = f->Read(buf);
    Result<size_t> next = f->Read(buf);
    *second = next.ok() ? Status(Code::kInternal, "no error") : next.status();
  };
  Result<size_t> first[2] = {Status(Code::kInternal, "-"), Status(Code::kInternal, "-")};
  Status second[2];
  std::thread t0(read_twice, 0, &first[0], &second[0]);
  std::thread t1(read_twice, 1, &first[1], &second[1]);
  t0.join();
  t1.join();
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(first[i].ok()) << first[i].status().ToString();
    EXPECT_EQ(*first[i], 50000u) << "the bytes before the error come first";
    EXPECT_EQ(second[i].code(), Code::kIOError) << second[i].ToString();
    EXPECT_NE(second[i].message().find("broken"), std::string::npos);
  }
}

TEST(TeeStreamTest, TheReadingThreadStaysBoundedAheadOfTheSlowestReader) {
  const std::string data = RandomBytes(100 * 1000);
  auto source = std::make_unique<CountingSource>(data);
  CountingSource* counter = source.get();
  constexpr size_t kBlock = 1000;
  constexpr size_t kMaxBlocks = 3;
  TeeStream tee(std::move(source), 2, kBlock, kMaxBlocks);
  std::unique_ptr<SequentialFile> fast = tee.Reader(0);
  std::unique_ptr<SequentialFile> slow = tee.Reader(1);
  Result<std::string> fast_got = Status(Code::kInternal, "not read");
  std::thread t([&] { fast_got = ReadAll(*fast, 500); });
  // The slow reader reads nothing yet: the source is not read past what it may queue for it.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LE(counter->reads.load(), static_cast<int>(kMaxBlocks) + 1);
  Result<std::string> slow_got = ReadAll(*slow, 7000);
  t.join();
  ASSERT_TRUE(slow_got.ok() && fast_got.ok());
  EXPECT_TRUE(*slow_got == data);
  EXPECT_TRUE(*fast_got == data);
  EXPECT_GE(counter->reads.load(), 100);  // 100 blocks and the end
}

}  // namespace
}  // namespace imgstore::layers
