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
//   pull-layout ROOT LAYOUT MANIFEST_DIGEST MAX_PARALLEL DELAY_MS
//       Opens the store, prints "ready", waits for "go", then pulls the image whose manifest is
//       the blob MANIFEST_DIGEST of the OCI layout directory LAYOUT, from a source that serves
//       blobs to several threads at once (64 KiB reads, DELAY_MS after each), up to MAX_PARALLEL
//       at once. Prints "ok written=<blobs this pull wrote>" (exit 0) or "error <status>".
#include <unistd.h>

#include <algorithm>
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

// Blobs of an OCI layout's blobs/sha256, served to several threads at once, slowly.
class LayoutSource final : public images::ImageSource {
 public:
  LayoutSource(std::string dir, Digest manifest, std::chrono::milliseconds delay)
      : dir_(std::move(dir)), manifest_(std::move(manifest)), delay_(delay) {}
  std::string Describe() const override { return "layout:" + dir_; }
  Result<images::RawManifest> GetManifest() override {
    Result<std::string> bytes = Env::Default()->ReadFileToString(Path(manifest_), 4 << 20);
    if (!bytes.ok()) return bytes.status();
    return images::RawManifest{std::move(*bytes), ""};
  }
  Result<images::RawManifest> GetManifest(const images::Descriptor&) override {
    return Status(Code::kNotFound, "layout source: no index");
  }
  Result<std::unique_ptr<SequentialFile>> GetBlob(const images::Descriptor& d) override {
    Result<std::unique_ptr<SequentialFile>> f = Env::Default()->NewSequentialFile(Path(d.digest));
    if (!f.ok()) return f.status();
    return std::unique_ptr<SequentialFile>(std::make_unique<Slow>(std::move(*f), delay_));
  }
  bool ConcurrentBlobs() const override { return true; }

 private:
  class Slow final : public SequentialFile {
   public:
    Slow(std::unique_ptr<SequentialFile> f, std::chrono::milliseconds delay)
        : SequentialFile(f->path()), f_(std::move(f)), delay_(delay) {}
    Result<size_t> Read(std::span<std::byte> buf) override {
      Result<size_t> n = f_->Read(buf.subspan(0, std::min<size_t>(buf.size(), 65536)));
      std::this_thread::sleep_for(delay_);
      return n;
    }
    Status Skip(uint64_t n) override { return f_->Skip(n); }

   private:
    std::unique_ptr<SequentialFile> f_;
    std::chrono::milliseconds delay_;
  };
  std::string Path(const Digest& d) const { return dir_ + "/blobs/sha256/" + std::string(d.hex()); }

  std::string dir_;
  Digest manifest_;
  std::chrono::milliseconds delay_;
};

int PullLayout(char** argv) {
  Result<Digest> manifest = Digest::Parse(argv[4]);
  if (!manifest.ok()) Fail(manifest.status());
  Result<std::unique_ptr<Store>> store = Store::Open(argv[2]);
  if (!store.ok()) Fail(store.status());
  LayoutSource source(argv[3], *manifest, std::chrono::milliseconds(std::atoi(argv[6])));
  PullOptions options;
  options.max_parallel = std::atoi(argv[5]);
  Say("ready");
  std::string line;
  if (!std::getline(std::cin, line) || line != "go") return 2;
  Result<PullResult> r = (*store)->Pull(source, options);
  if (!r.ok()) Fail(r.status());
  Say("ok written=" + std::to_string(r->blobs_written));
  return 0;
}

int Main(int argc, char** argv) {
  if (argc == 7 && std::string(argv[1]) == "pull-layout") return PullLayout(argv);
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
