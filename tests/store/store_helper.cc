// store_helper: a tiny program the store tests run as a real, separate process, so that two
// processes ingesting one blob, and a writer killed with SIGKILL in the middle of an ingest, are
// tested between processes and not only between threads.
//
// Protocol: one line per event on stdout, each written with one write(2).
//
//   ingest-file ROOT DIGEST SIZE FILE DELAY_MS
//       Opens the store, prints "ready", waits for a line "go" on stdin, then ingests FILE in
//       64 KiB reads, sleeping DELAY_MS after each. Prints "ok written=<0|1>" (exit 0) or
//       "error <status>" (exit 1).
//   ingest-stdin ROOT DIGEST SIZE
//       Opens the store, prints "ready", and ingests bytes taken from stdin: each line is one
//       read of the source (its text without the newline); "end" ends the blob. Prints
//       "ack <bytes so far>" after each line has been handed to the store, then the result as
//       above.
//   lease ROOT DIGEST LABEL
//       Opens the store, creates a lease labelled LABEL pinning DIGEST, prints "lease <id>", and
//       holds it until stdin ends (then releases it and prints "released"); tests kill -9 it.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include "store/store.h"

namespace imgstore::store {
namespace {

void Say(const std::string& line) {
  std::string data = line + "\n";
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(1, data.data() + off, data.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

[[noreturn]] void Fail(const Status& s) {
  Say("error " + s.ToString());
  std::exit(1);
}

int Finish(const Result<IngestResult>& r) {
  if (!r.ok()) Fail(r.status());
  Say(std::string("ok written=") + (r->written ? "1" : "0"));
  return 0;
}

int Main(int argc, char** argv) {
  if (argc < 5) {
    std::cerr << "usage: store_helper ingest-file|ingest-stdin|lease ROOT DIGEST SIZE|LABEL ...\n";
    return 64;
  }
  std::string cmd = argv[1];
  Result<Digest> digest = Digest::Parse(argv[3]);
  if (!digest.ok()) Fail(digest.status());
  IngestOptions options;
  options.expected_size = std::strtoull(argv[4], nullptr, 10);
  options.operation = "store_helper " + cmd;
  Result<std::unique_ptr<Store>> store = Store::Open(argv[2]);
  if (!store.ok()) Fail(store.status());
  Say("ready");

  if (cmd == "ingest-file" && argc == 7) {
    std::string line;
    if (!std::getline(std::cin, line) || line != "go") return 2;
    Result<std::unique_ptr<SequentialFile>> file = Env::Default()->NewSequentialFile(argv[5]);
    if (!file.ok()) Fail(file.status());
    auto delay = std::chrono::milliseconds(std::atoi(argv[6]));
    Result<IngestResult> r =
        (*store)->IngestBlob(*digest, options, [&](std::span<std::byte> buf) -> Result<size_t> {
          Result<size_t> n = (*file)->Read(buf.subspan(0, std::min<size_t>(buf.size(), 65536)));
          std::this_thread::sleep_for(delay);
          return n;
        });
    return Finish(r);
  }
  if (cmd == "ingest-stdin" && argc == 5) {
    uint64_t total = 0;
    std::string pending;  // bytes of a line longer than one read of the store
    bool ended = false;
    Result<IngestResult> r =
        (*store)->IngestBlob(*digest, options, [&](std::span<std::byte> buf) -> Result<size_t> {
          if (pending.empty() && !ended) {
            std::string line;
            if (!std::getline(std::cin, line) || line == "end") {
              ended = true;
            } else {
              pending = line;
            }
          }
          size_t n = std::min(buf.size(), pending.size());
          std::memcpy(buf.data(), pending.data(), n);
          pending.erase(0, n);
          total += n;
          if (n > 0) Say("ack " + std::to_string(total));
          return n;
        });
    return Finish(r);
  }
  if (cmd == "lease") {
    Result<std::unique_ptr<StoreLease>> lease = (*store)->CreateLease(argv[4]);
    if (!lease.ok()) Fail(lease.status());
    Status pinned = (*lease)->Pin(std::span<const Digest>(&*digest, 1));
    if (!pinned.ok()) Fail(pinned);
    Say("lease " + (*lease)->id());
    std::string line;
    while (std::getline(std::cin, line)) {
    }
    Status released = (*lease)->Release();
    if (!released.ok()) Fail(released);
    Say("released");
    return 0;
  }
  std::cerr << "store_helper: bad command\n";
  return 64;
}

}  // namespace
}  // namespace imgstore::store

int main(int argc, char** argv) { return imgstore::store::Main(argc, argv); }
