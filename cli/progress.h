// The progress of a pull or push on stderr (docs/pull-push.md, "Progress"). On a terminal: a
// bar per blob in flight, redrawn in place with ANSI cursor movement, and an overall line.
// Otherwise: one line per blob when it is done, for logs. Quiet: nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "imgstore/types.hpp"

namespace imgstore::cli {

enum class ProgressMode {
  kQuiet,     // nothing
  kLines,     // "Copying blob sha256:0123456789ab done (40.0 MiB)" once per blob
  kTerminal,  // bars redrawn in place, and the same lines for blobs that are done
};

// kQuiet when asked; else kTerminal when `out` is a terminal and kLines when it is not.
ProgressMode ProgressModeFor(bool quiet, std::FILE* out = stderr);

// Sizes in binary units with one decimal: "512 B", "1.5 KiB", "12.3 MiB", "1.2 GiB".
std::string ProgressSize(uint64_t bytes);

class ProgressDisplay {
 public:
  explicit ProgressDisplay(ProgressMode mode, std::FILE* out = stderr);
  ~ProgressDisplay();  // Finish()
  ProgressDisplay(const ProgressDisplay&) = delete;
  ProgressDisplay& operator=(const ProgressDisplay&) = delete;

  // The blobs the operation will report, when it knows them ahead: the overall line then shows
  // "done/total" blobs and bytes.
  void Expect(size_t blobs, uint64_t bytes);
  // One report of one blob (thread-safe; calls may come from several threads).
  void Update(const Progress& p);
  // A line of the command's own (a lock-wait notice) printed as is, with a newline: on a
  // terminal above the live region, which is redrawn below it instead of being scrolled apart.
  // Shown even when quiet (it explains a wait, it is not progress). Thread-safe.
  void Message(const std::string& line);
  // Draws the last state once more and leaves the cursor on a fresh line below it, so that what
  // follows (an error line, a summary) is not drawn over. Later calls do nothing.
  void Finish();

 private:
  enum class State { kCopying, kDone, kExists, kMounted };
  struct Blob {
    std::string digest;
    uint64_t done = 0;
    uint64_t total = 0;
    State state = State::kCopying;
    bool announced = false;  // its "Copying blob ..." line is printed (once, ever)
    std::chrono::steady_clock::time_point started;  // its first report
    uint64_t first_done = 0;                        // `done` of that report
  };
  using Clock = std::chrono::steady_clock;

  // The blob's entry; a new one (*created set) on its first report.
  Blob& Find(const std::string& digest, bool* created);
  std::string DoneLine(const Blob& b) const;
  std::string BarLine(const Blob& b, Clock::time_point now) const;
  std::string TotalLine(Clock::time_point now) const;
  // Terminal: rewrites the live region (bars and the overall line) below the new done lines.
  void Redraw(Clock::time_point now);
  std::string Fit(std::string line) const;  // cut to the terminal's width (no wrapping)
  void Write(const std::string& text);

  const ProgressMode mode_;
  std::FILE* const out_;
  int width_ = 80;  // columns of the terminal
  int rows_ = 24;   // and its lines
  std::mutex mu_;
  std::vector<Blob> blobs_;  // in order of their first report
  size_t expected_blobs_ = 0;
  uint64_t expected_bytes_ = 0;
  std::vector<std::string> pending_lines_;     // blobs done since the last redraw, in order
  std::vector<std::string> pending_messages_;  // Message() lines not yet drawn
  int live_lines_ = 0;                         // lines of the live region on screen now
  bool started_ = false;                       // a report came: Finish() draws the last frame
  Clock::time_point start_;  // construction: the overall rate counts the whole operation
  Clock::time_point last_draw_;
  bool finished_ = false;
};

}  // namespace imgstore::cli
