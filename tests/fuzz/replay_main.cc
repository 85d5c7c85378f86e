// The main of the replay tests (tests/fuzz/CMakeLists.txt): runs LLVMFuzzerTestOneInput once
// per input file, as libFuzzer does when given files, but without libFuzzer (gcc builds).
//
//   fuzz_replay_NAME PATH... [--optional PATH...]
//
// A PATH is a file or a directory (its regular files, recursively, in name order). A required
// PATH must exist and hold at least one input, so that a lost corpus fails the test instead of
// passing vacuously; PATHs after --optional may be missing or empty. A crash or an invariant
// that fuzz::Check finds broken aborts, naming the input first.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

std::vector<fs::path> Inputs(const fs::path& root) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_regular_file(root, ec)) return {root};
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file() && !it->path().filename().string().starts_with('.')) {
      files.push_back(it->path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  bool optional = false;
  size_t total = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--optional") {
      optional = true;
      continue;
    }
    std::vector<fs::path> files = Inputs(arg);
    if (files.empty() && !optional) {
      std::fprintf(stderr, "replay: no inputs in %s\n", arg.c_str());
      return 1;
    }
    for (const fs::path& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (!in.good() && !in.eof()) {
        std::fprintf(stderr, "replay: cannot read %s\n", f.c_str());
        return 1;
      }
      std::fprintf(stderr, "replay: %s (%zu bytes)\n", f.c_str(), bytes.size());
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      ++total;
    }
  }
  std::fprintf(stderr, "replay: %zu inputs, no failure\n", total);
  return 0;
}
