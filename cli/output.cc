// Output shared by the commands (see output.h).
#include "output.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>

namespace imgstore::cli {

int64_t NowUnixNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string HumanSize(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  double size = static_cast<double>(bytes);
  size_t unit = 0;
  char buf[32];
  while (true) {
    while (size >= 1000.0 && unit + 1 < std::size(kUnits)) {
      size /= 1000.0;
      ++unit;
    }
    std::snprintf(buf, sizeof(buf), "%.3g", size);
    // 999.96 prints as "1e+03": say "1" of the next unit instead.
    if (std::string_view(buf).find('e') == std::string_view::npos ||
        unit + 1 == std::size(kUnits)) {
      break;
    }
    size = 1000.0;
  }
  return std::string(buf) + kUnits[unit];
}

std::string HumanDuration(int64_t ns) {
  using namespace std::chrono;
  const nanoseconds d{std::max<int64_t>(ns, 0)};
  const int64_t seconds = duration_cast<std::chrono::seconds>(d).count();
  if (seconds < 1) return "Less than a second";
  if (seconds == 1) return "1 second";
  if (seconds < 60) return std::to_string(seconds) + " seconds";
  const int64_t minutes = duration_cast<std::chrono::minutes>(d).count();
  if (minutes == 1) return "About a minute";
  if (minutes < 60) return std::to_string(minutes) + " minutes";
  // docker rounds to the nearest hour here (and truncates everywhere else).
  const int64_t hours = round<std::chrono::hours>(d).count();
  if (hours == 1) return "About an hour";
  if (hours < 48) return std::to_string(hours) + " hours";
  if (hours < 24 * 7 * 2) return std::to_string(hours / 24) + " days";
  if (hours < 24 * 30 * 2) return std::to_string(hours / 24 / 7) + " weeks";
  if (hours < 24 * 365 * 2) return std::to_string(hours / 24 / 30) + " months";
  return std::to_string(duration_cast<std::chrono::hours>(d).count() / 24 / 365) + " years";
}

std::string HumanAge(int64_t then_unix_ns, int64_t now_unix_ns) {
  if (then_unix_ns == 0) return "N/A";
  return HumanDuration(now_unix_ns - then_unix_ns) + " ago";
}

std::string FormatRfc3339(int64_t unix_ns) {
  using namespace std::chrono;
  sys_time<nanoseconds> t{nanoseconds(unix_ns)};
  sys_days day = floor<days>(t);
  year_month_day ymd{day};
  hh_mm_ss<nanoseconds> hms{t - day};
  char buf[64];
  int n =
      std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02d:%02d:%02d", static_cast<int>(ymd.year()),
                    static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                    static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                    static_cast<int>(hms.seconds().count()));
  std::string out(buf, static_cast<size_t>(n));
  if (int64_t frac = hms.subseconds().count(); frac != 0) {
    n = std::snprintf(buf, sizeof(buf), ".%09lld", static_cast<long long>(frac));
    while (buf[n - 1] == '0') --n;
    out.append(buf, static_cast<size_t>(n));
  }
  return out + "Z";
}

Table::Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }

void Table::AddRow(std::vector<std::string> row) {
  row.resize(rows_[0].size());
  rows_.push_back(std::move(row));
}

void Table::AppendTo(std::string& out) const {
  constexpr size_t kPadding = 3;
  constexpr size_t kMinWidth = 10;
  const size_t columns = rows_[0].size();
  std::vector<size_t> width(columns, 0);
  size_t line = 0;
  for (const auto& row : rows_) {
    for (size_t c = 0; c < columns; ++c) width[c] = std::max(width[c], row[c].size() + kPadding);
  }
  for (size_t c = 0; c < columns; ++c) {
    width[c] = std::max(width[c], kMinWidth);
    line += width[c];
  }
  out.reserve(out.size() + rows_.size() * (line + 1));
  for (const auto& row : rows_) {
    for (size_t c = 0; c + 1 < columns; ++c) {
      out += row[c];
      out.append(width[c] - row[c].size(), ' ');
    }
    out += row[columns - 1];
    out += '\n';
  }
}

void AppendJsonString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t plain = 0;  // start of the run of characters that need no escape
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.substr(plain, i - plain));
    plain = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
    }
  }
  out.append(text.substr(plain));
  out += '"';
}

std::string JsonText(const Json& value) {
  return value.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

namespace {

// Writes all of text to fd.
bool WriteAll(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    text.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

Status WriteFileAtomically(const std::string& path, std::string_view text) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string tmp = dir + "/." + base + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno(errno, "create " + tmp);
  if (!WriteAll(fd, text) || ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Status::FromErrno(err, "write " + tmp);
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return Status::FromErrno(err, "write " + tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return Status::FromErrno(err, "rename " + tmp + " to " + path);
  }
  // The rename is durable once the directory is.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Status::FromErrno(errno, "open " + dir);
  const bool synced = ::fsync(dfd) == 0;
  const int err = errno;
  ::close(dfd);
  if (!synced) return Status::FromErrno(err, "fsync " + dir);
  return Status::OK();
}

Status WriteStdout(std::string_view text) {
  while (!text.empty()) {
    ssize_t n = ::write(STDOUT_FILENO, text.data(), text.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "write to stdout");
    }
    text.remove_prefix(static_cast<size_t>(n));
  }
  return Status::OK();
}

}  // namespace imgstore::cli
