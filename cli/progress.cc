// ProgressDisplay (see progress.h). The terminal view keeps the lines of finished blobs as
// ordinary output and redraws only the region below them (the bars of blobs in flight and the
// overall line), so that the region stays small however many blobs an image has, and scrolling
// never carries a half-drawn frame away.
#include "progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace imgstore::cli {
namespace {

using namespace std::chrono_literals;

constexpr auto kRedrawInterval = 100ms;  // at most ~10 frames a second for bytes alone
constexpr int kMaxBars = 20;             // bars shown at once; the rest are summed up

// "sha256:0123456789ab": enough of a digest to tell blobs apart.
std::string Short(const std::string& d) { return d.substr(0, 19); }

// "5.1 MiB/s", or "" over too short a time to mean anything.
std::string Rate(uint64_t bytes, std::chrono::steady_clock::duration elapsed) {
  const double seconds = std::chrono::duration<double>(elapsed).count();
  if (seconds < 0.2) return "";
  return ProgressSize(static_cast<uint64_t>(static_cast<double>(bytes) / seconds)) + "/s";
}

}  // namespace

ProgressMode ProgressModeFor(bool quiet, std::FILE* out) {
  if (quiet) return ProgressMode::kQuiet;
  return ::isatty(::fileno(out)) == 1 ? ProgressMode::kTerminal : ProgressMode::kLines;
}

std::string ProgressSize(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  // 1023.96 KiB would print as "1024.0 KiB": move up before rounding does.
  while (value >= 1024 * 0.99995 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.1f %s", value, kUnits[unit]);
  return text;
}

ProgressDisplay::ProgressDisplay(ProgressMode mode, std::FILE* out)
    : mode_(mode), out_(out), start_(Clock::now()) {
  if (mode_ != ProgressMode::kTerminal) return;
  struct winsize ws = {};
  if (::ioctl(::fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) width_ = ws.ws_col;
  if (ws.ws_row > 0) rows_ = ws.ws_row;
}

ProgressDisplay::~ProgressDisplay() { Finish(); }

void ProgressDisplay::Expect(size_t blobs, uint64_t bytes) {
  std::lock_guard lock(mu_);
  expected_blobs_ = blobs;
  expected_bytes_ = bytes;
}

ProgressDisplay::Blob& ProgressDisplay::Find(const std::string& digest, bool* created) {
  for (Blob& b : blobs_) {
    if (b.digest == digest) return b;
  }
  *created = true;
  Blob& b = blobs_.emplace_back();
  b.digest = digest;
  return b;
}

void ProgressDisplay::Update(const Progress& p) {
  if (mode_ == ProgressMode::kQuiet) return;
  std::lock_guard lock(mu_);
  if (finished_) return;
  const Clock::time_point now = Clock::now();
  started_ = true;
  bool created = false;
  Blob& b = Find(p.digest, &created);
  if (created) {
    // Its rate counts from here: the bytes of this first report came in an unknown time.
    b.started = now;
    b.first_done = p.done;
  }
  const bool was_copying = created || b.state == State::kCopying;
  b.done = p.done;
  b.total = p.total;
  b.state = p.mounted           ? State::kMounted
            : p.skipped         ? State::kExists
            : p.done >= p.total ? State::kDone
                                : State::kCopying;
  const bool ended = was_copying && b.state != State::kCopying;
  // A blob copied again (a retried upload) shows its bar again, but its line only once.
  if (ended && !b.announced) {
    b.announced = true;
    if (mode_ == ProgressMode::kLines) Write(DoneLine(b) + "\n");
    if (mode_ == ProgressMode::kTerminal) pending_lines_.push_back(b.digest);
  }
  if (mode_ == ProgressMode::kTerminal &&
      (created || ended || now - last_draw_ >= kRedrawInterval)) {
    Redraw(now);
  }
}

void ProgressDisplay::Message(const std::string& line) {
  std::lock_guard lock(mu_);
  if (mode_ != ProgressMode::kTerminal || finished_ || live_lines_ == 0) {
    Write(line + "\n");
    return;
  }
  pending_messages_.push_back(line);
  Redraw(Clock::now());
}

void ProgressDisplay::Finish() {
  std::lock_guard lock(mu_);
  if (finished_) return;
  finished_ = true;
  if (mode_ == ProgressMode::kTerminal && started_) Redraw(Clock::now());
}

std::string ProgressDisplay::DoneLine(const Blob& b) const {
  std::string line = "Copying blob " + Short(b.digest) + " ";
  switch (b.state) {
    case State::kExists:
      return line + "skipped: already exists";
    case State::kMounted:
      return line + "skipped: mounted from another repository";
    default:
      return line + "done (" + ProgressSize(b.total) + ")";
  }
}

std::string ProgressDisplay::BarLine(const Blob& b, Clock::time_point now) const {
  std::string tail = " " + ProgressSize(b.done) + " / " + ProgressSize(b.total);
  const std::string rate = Rate(b.done - std::min(b.done, b.first_done), now - b.started);
  if (!rate.empty()) tail += "  " + rate;
  const std::string head = Short(b.digest) + " [";
  const int room = width_ - 1 - static_cast<int>(head.size() + tail.size()) - 1;
  const int width = std::clamp(room, 10, 40);
  const int filled =
      b.total == 0 ? width : static_cast<int>(static_cast<double>(width) * b.done / b.total);
  std::string bar;
  if (filled >= width) {
    bar.assign(width, '=');
  } else {
    bar.assign(std::max(filled - 1, 0), '=');
    bar += '>';
    bar.append(width - static_cast<int>(bar.size()), ' ');
  }
  return head + bar + "]" + tail;
}

std::string ProgressDisplay::TotalLine(Clock::time_point now) const {
  size_t done = 0;
  uint64_t bytes = 0;
  uint64_t total = 0;
  uint64_t copied = 0;  // bytes that moved (not those of skipped blobs): the rate
  for (const Blob& b : blobs_) {
    if (b.state != State::kCopying) ++done;
    const bool skipped = b.state == State::kExists || b.state == State::kMounted;
    bytes += skipped ? b.total : b.done;
    total += b.total;
    if (!skipped) copied += b.done;
  }
  const size_t count = std::max(expected_blobs_, blobs_.size());
  total = std::max(total, expected_bytes_);
  std::string line = "Total: " + std::to_string(done) + "/" + std::to_string(count) + " blobs  " +
                     ProgressSize(bytes) + " / " + ProgressSize(total);
  const std::string rate = Rate(copied, now - start_);
  return rate.empty() ? line : line + "  " + rate;
}

void ProgressDisplay::Redraw(Clock::time_point now) {
  std::string frame;
  // Back to the top of the live region, and clear from there down.
  if (live_lines_ > 0) frame += "\033[" + std::to_string(live_lines_) + "A";
  frame += "\r\033[J";
  for (const std::string& m : pending_messages_) frame += m + "\n";
  pending_messages_.clear();
  for (const std::string& d : pending_lines_) {
    bool unused = false;
    frame += Fit(DoneLine(Find(d, &unused))) + "\n";
  }
  pending_lines_.clear();
  // Bars that fit on the screen with the overall line (cursor movement cannot reach lines that
  // scrolled off the top); the rest are counted.
  const int max_bars = std::max(1, std::min(kMaxBars, rows_ - 2));
  int live = 0;
  int hidden = 0;
  for (const Blob& b : blobs_) {
    if (b.state != State::kCopying) continue;
    if (live < max_bars) {
      frame += Fit(BarLine(b, now)) + "\n";
      ++live;
    } else {
      ++hidden;
    }
  }
  std::string total = TotalLine(now);
  if (hidden > 0) total += "  (" + std::to_string(hidden) + " more in flight)";
  frame += Fit(total) + "\n";
  live_lines_ = live + 1;
  last_draw_ = now;
  Write(frame);
}

std::string ProgressDisplay::Fit(std::string line) const {
  // The lines are ASCII: one byte, one column. A line as wide as the terminal would wrap on
  // some terminals and break the count of lines to move up.
  const size_t max = static_cast<size_t>(std::max(width_ - 1, 20));
  if (line.size() > max) line.resize(max);
  return line;
}

void ProgressDisplay::Write(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), out_);
  std::fflush(out_);
}

}  // namespace imgstore::cli
