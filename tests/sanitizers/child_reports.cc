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
#include <utility>
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
    // UBSan gets a name of its own: with gcc it is a second runtime beside ASan's
    // (tests/sanitizers/ubsan_log_path.c), which would truncate a file of the same name.
    const std::pair<const char*, const char*> vars[] = {{"ASAN_OPTIONS", "asan"},
                                                        {"LSAN_OPTIONS", "asan"},
                                                        {"UBSAN_OPTIONS", "ubsan"},
                                                        {"TSAN_OPTIONS", "tsan"}};
    for (const auto& [var, prefix] : vars) {
      const char* old = std::getenv(var);
      std::string value = old != nullptr && *old != '\0' ? std::string(old) + ":" : "";
      value += "log_path=" + dir_ + "/" + prefix;
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

  // Prints and removes what the children wrote; returns how many reports of a finding there were.
  // Not every line a runtime logs is one: a helper the test kills with SIGKILL while LeakSanitizer
  // checks it at exit leaves "Unable to get registers from thread N" from the checker, and no
  // verdict. That is printed as a note and does not fail the test.
  int Collect() {
    std::vector<std::string> files;
    if (DIR* d = ::opendir(dir_.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name != "." && name != "..") files.push_back(dir_ + "/" + name);
      }
      ::closedir(d);
    }
    int reports = 0;
    for (const std::string& f : files) {
      std::ifstream in(f);
      std::stringstream buf;
      buf << in.rdbuf();
      const std::string text = buf.str();
      bool finding = false;
      for (const char* marker :
           {"ERROR: ", "WARNING: ThreadSanitizer", "runtime error", "SUMMARY: ", "CHECK failed"}) {
        finding = finding || text.find(marker) != std::string::npos;
      }
      reports += finding ? 1 : 0;
      std::cerr << "==== " << (finding ? "sanitizer report" : "note (not a finding)")
                << " of a child process (" << f << ") ====\n"
                << text << "==== end ====" << std::endl;
      ::unlink(f.c_str());
    }
    return reports;
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
