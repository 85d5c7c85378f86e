// Linked into every test binary of a sanitizer build (tests/CMakeLists.txt): makes a sanitizer
// report in a child process (the imgstore CLI, lock_helper, store_helper...) fail the test.
//
// An exit status alone does not do it: a test that expects a child to fail ("exit != 0"), or
// does not look at how a helper ended, would pass over a child's heap overflow or leak. So the
// children write their reports to files in a directory of this test process (log_path, set in
// the environment they inherit), and the test fails if any file appeared, with the report copied
// into its log. The test process's own reports go to its stderr and fail it through its exit
// status (scripts/sanitize.sh sets halt_on_error and abort_on_error).
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

// The directory the children write their reports to, made before any test starts a child.
class ReportDir {
 public:
  ReportDir() : owner_(::getpid()) {
    char tmpl[] = "/tmp/imgstore-san-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      std::perror("imgstore sanitizer build: mkdtemp /tmp/imgstore-san-XXXXXX");
      std::abort();
    }
    dir_ = tmpl;
    // The last log_path of an options string wins; the test's own options stay as they are.
    for (const char* var : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"}) {
      const char* old = std::getenv(var);
      std::string value = old != nullptr && *old != '\0' ? std::string(old) + ":" : "";
      value += "log_path=" + dir_ + "/report";
      ::setenv(var, value.c_str(), 1);
    }
  }

  // At exit: reports written after the last test (by a child that outlived it) still fail the
  // binary. A forked copy of the test process that exits does not touch the parent's directory.
  ~ReportDir() {
    if (::getpid() != owner_) return;
    if (Collect() > 0) std::_Exit(1);
    ::rmdir(dir_.c_str());
  }
  ReportDir(const ReportDir&) = delete;
  ReportDir& operator=(const ReportDir&) = delete;

  // Prints and removes the reports found; returns how many there were.
  int Collect() {
    std::vector<std::string> files;
    if (DIR* d = ::opendir(dir_.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name != "." && name != "..") files.push_back(dir_ + "/" + name);
      }
      ::closedir(d);
    }
    for (const std::string& f : files) {
      std::ifstream in(f);
      std::stringstream text;
      text << in.rdbuf();
      std::cerr << "==== sanitizer report of a child process (" << f << ") ====\n"
                << text.str() << "==== end of report ====" << std::endl;
      ::unlink(f.c_str());
    }
    return static_cast<int>(files.size());
  }

 private:
  pid_t owner_;
  std::string dir_;
};

ReportDir report_dir;

// Fails the test binary (under ctest: the one test it runs) once its tests are done.
class ChildReports : public ::testing::Environment {
 public:
  void TearDown() override {
    if (int n = report_dir.Collect(); n > 0) {
      ADD_FAILURE() << n << " sanitizer report(s) from child processes (printed above)";
    }
  }
};

// gtest owns the environment (and never deletes it: its registry lives to the end).
[[maybe_unused]] ::testing::Environment* const child_reports =
    ::testing::AddGlobalTestEnvironment(new ChildReports);

}  // namespace
