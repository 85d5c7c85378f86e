// Runs the imgstore binary as a whole process and captures what it printed: the fixture of the
// integration tests that go through the command line.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace imgstore::testing {

struct CliResult {
  int exit_code = -1;  // the exit status, or -SIGNAL when killed, or -1000 when it timed out
  std::string out;     // everything on stdout
  std::string err;     // everything on stderr
  // "exit 1, stderr: ..." for assertion messages.
  std::string Describe() const;
};

// The built imgstore binary.
std::string ImgstoreBinary();

// Runs `imgstore --root ROOT ARGS...` (no --root when root is ""), with stdin from /dev/null,
// and the environment of the test plus `env` ("NAME=value" entries). Kills it (SIGKILL) after
// `timeout`.
CliResult RunImgstore(const std::string& root, const std::vector<std::string>& args,
                      const std::vector<std::string>& env = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(120));

// RunImgstore with stderr on a pseudo-terminal of 120 columns and 40 lines, as a user at a
// terminal runs it (stdin is /dev/null and stdout is captured as RunImgstore does). `err` is what
// the terminal received, byte for byte (output processing is off: "\n" stays "\n").
CliResult RunImgstoreInPty(const std::string& root, const std::vector<std::string>& args,
                           const std::vector<std::string>& env = {},
                           std::chrono::milliseconds timeout = std::chrono::seconds(120));

// Runs any program the same way (skopeo, umoci, sha256sum...), argv[0] = path.
CliResult RunProgram(const std::string& path, const std::vector<std::string>& args,
                     const std::vector<std::string>& env = {},
                     std::chrono::milliseconds timeout = std::chrono::seconds(120));

}  // namespace imgstore::testing
