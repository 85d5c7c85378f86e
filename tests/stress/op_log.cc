// The stress test's operation log and its invariant checks (op_log.h).
#include "stress/op_log.h"

#include <time.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

namespace imgstore::testing::stress {
namespace {

using nlohmann::json;

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Whether `other` ran, at least in part, between op's target being seen and op's end: the only
// operations that can have removed the target under op's feet.
bool Overlaps(const OpRecord& other, const OpRecord& op) {
  return other.end_ns != 0 && other.start_ns <= op.end_ns && other.end_ns >= op.seen_ns;
}

bool SameOp(const OpRecord& a, const OpRecord& b) { return a.worker == b.worker && a.seq == b.seq; }

// A successful rmi that deleted op's image in op's window.
bool ImageRemovedMeanwhile(const OpRecord& op, const std::vector<OpRecord>& all) {
  if (op.target_id.empty()) return false;
  for (const OpRecord& o : all) {
    if (!SameOp(o, op) && o.exit_code == 0 && Contains(o.deleted_ids, op.target_id) &&
        Overlaps(o, op)) {
      return true;
    }
  }
  return false;
}

// A successful operation that removed or moved op's name in op's window.
bool NameChangedMeanwhile(const OpRecord& op, const std::vector<OpRecord>& all) {
  if (op.target_name.empty()) return false;
  for (const OpRecord& o : all) {
    if (!SameOp(o, op) && o.exit_code == 0 && Contains(o.changed_names, op.target_name) &&
        Overlaps(o, op)) {
      return true;
    }
  }
  return false;
}

bool MountRemovedMeanwhile(const OpRecord& op, const std::vector<OpRecord>& all) {
  if (op.target_mount.empty()) return false;
  for (const OpRecord& o : all) {
    if (!SameOp(o, op) && o.exit_code == 0 && Contains(o.removed_mounts, op.target_mount) &&
        Overlaps(o, op)) {
      return true;
    }
  }
  return false;
}

std::string Ms(int64_t ns) { return std::to_string(ns / 1'000'000); }

}  // namespace

int64_t NowNs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string ToJsonLine(const OpRecord& r) {
  json j = {{"worker", r.worker},
            {"seq", r.seq},
            {"kind", r.kind},
            {"args", r.args},
            {"start_ns", r.start_ns},
            {"end_ns", r.end_ns},
            {"exit", r.exit_code},
            {"err", r.err},
            {"target_id", r.target_id},
            {"target_name", r.target_name},
            {"target_mount", r.target_mount},
            {"seen_ns", r.seen_ns},
            {"deleted_ids", r.deleted_ids},
            {"changed_names", r.changed_names},
            {"removed_mounts", r.removed_mounts}};
  // Replacement rather than an exception: stderr may hold a torn UTF-8 sequence.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string StartJsonLine(const OpRecord& r) {
  json j = {{"start", true},  {"worker", r.worker}, {"seq", r.seq},
            {"kind", r.kind}, {"args", r.args},     {"start_ns", r.start_ns}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<OpRecord> FromJsonLine(const std::string& line) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  OpRecord r;
  try {
    r.worker = j.at("worker").get<int>();
    r.seq = j.at("seq").get<int>();
    r.kind = j.at("kind").get<std::string>();
    r.args = j.at("args").get<std::vector<std::string>>();
    r.start_ns = j.at("start_ns").get<int64_t>();
    if (j.contains("start")) return r;
    r.end_ns = j.at("end_ns").get<int64_t>();
    r.exit_code = j.at("exit").get<int>();
    r.err = j.at("err").get<std::string>();
    r.target_id = j.at("target_id").get<std::string>();
    r.target_name = j.at("target_name").get<std::string>();
    r.target_mount = j.at("target_mount").get<std::string>();
    r.seen_ns = j.at("seen_ns").get<int64_t>();
    r.deleted_ids = j.at("deleted_ids").get<std::vector<std::string>>();
    r.changed_names = j.at("changed_names").get<std::vector<std::string>>();
    r.removed_mounts = j.at("removed_mounts").get<std::vector<std::string>>();
  } catch (const json::exception&) {
    return std::nullopt;
  }
  return r;
}

WorkerLog ParseLog(const std::string& text) {
  WorkerLog log;
  std::map<std::pair<int, int>, OpRecord> started;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::optional<OpRecord> r = FromJsonLine(line);
    if (!r) continue;  // a line cut by a kill: the analysis counts ops from their end lines
    if (r->end_ns == 0) {
      started[{r->worker, r->seq}] = *r;
    } else {
      started.erase({r->worker, r->seq});
      log.finished.push_back(std::move(*r));
    }
  }
  for (auto& [key, r] : started) log.running.push_back(std::move(r));
  return log;
}

std::vector<std::string> ErrorLines(const std::string& err) {
  std::vector<std::string> lines;
  std::istringstream in(err);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("imgstore: error:") != std::string::npos) lines.push_back(line);
  }
  return lines;
}

std::string BusyLine(const std::string& err) {
  std::istringstream in(err);
  std::string line;
  while (std::getline(in, line)) {
    std::string l = Lower(line);
    // SQLite's own words, and imgstore's for a busy handler that gave up (store/db.cc).
    for (const char* word : {"database is locked", "database table is locked", "sqlite_busy",
                             "sqlite_locked", "waiting for the database", "holds its write lock"}) {
      if (l.find(word) != std::string::npos) return line;
    }
  }
  return "";
}

Outcome Classify(const OpRecord& op, const std::vector<OpRecord>& all,
                 const AnalysisOptions& options, std::string* why) {
  auto violation = [&](std::string reason) {
    *why = std::move(reason);
    return Outcome::kViolation;
  };
  if (op.end_ns == 0) return violation("never finished");
  int64_t took = op.end_ns - op.start_ns;
  if (took > options.deadline_ns) {
    return violation("took " + Ms(took) + " ms, over the deadline of " + Ms(options.deadline_ns) +
                     " ms: a deadlock or a wait without a deadline");
  }
  if (std::string busy = BusyLine(op.err); !busy.empty()) {
    return violation("a busy error reached the user: " + busy);
  }
  if (op.exit_code == -1000) return violation("killed at its timeout");
  if (op.exit_code < 0) return violation("killed by signal " + std::to_string(-op.exit_code));
  if (op.exit_code == 2) return violation("usage error (exit 2): the test's own mistake");
  if (op.exit_code != 0 && op.exit_code != 1) {
    return violation("unexpected exit status " + std::to_string(op.exit_code));
  }

  // The worker's own checks: the failure found is the whole of err.
  if (op.kind == "snapshot") {
    if (op.exit_code == 0) return Outcome::kSuccess;
    return violation("list printed no consistent snapshot: " + op.err);
  }
  if (op.kind == "blobs" || op.kind == "write") {
    if (op.exit_code == 0) return Outcome::kSuccess;
    bool attributed =
        op.kind == "blobs" ? ImageRemovedMeanwhile(op, all) : MountRemovedMeanwhile(op, all);
    if (attributed) return Outcome::kExpectedFailure;
    return violation(op.kind == "blobs"
                         ? "a listed image lacks a blob and no rmi removed it: " + op.err
                         : "cannot write into a mount nobody removed: " + op.err);
  }

  std::vector<std::string> errors = ErrorLines(op.err);
  if (op.exit_code == 0) {
    if (!errors.empty()) return violation("exit 0 with an error line: " + errors[0]);
    return Outcome::kSuccess;
  }
  if (errors.size() != 1) {
    return violation(std::to_string(errors.size()) + " error lines where one was due");
  }
  const std::string& e = errors[0];
  if (op.kind == "commit" && e.find("image not known") != std::string::npos) {
    // A mount keeps its image's blobs through rmi and gc (docs/cli.md): its commit must not
    // depend on the image record.
    return violation("the commit of a live mount failed for want of its base image: " + e);
  }
  if (e.find("image not known") != std::string::npos) {
    if (ImageRemovedMeanwhile(op, all) || NameChangedMeanwhile(op, all)) {
      return Outcome::kExpectedFailure;
    }
    return violation("image not known, but no other operation removed it: " + e);
  }
  if (e.find(" has no name ") != std::string::npos) {
    if (NameChangedMeanwhile(op, all) || ImageRemovedMeanwhile(op, all)) {
      return Outcome::kExpectedFailure;
    }
    return violation("name gone, but no other operation moved or removed it: " + e);
  }
  if (e.find("mount not known") != std::string::npos) {
    if (MountRemovedMeanwhile(op, all)) return Outcome::kExpectedFailure;
    return violation("mount not known, but no other operation removed it: " + e);
  }
  return violation("unexpected error: " + e);
}

Analysis Analyze(const std::vector<OpRecord>& all, const AnalysisOptions& options) {
  Analysis a;
  for (const OpRecord& op : all) {
    std::string why;
    Outcome o = Classify(op, all, options, &why);
    KindStats& k = a.by_kind[op.kind];
    ++k.count;
    if (op.end_ns != 0) k.latencies_ns.push_back(op.end_ns - op.start_ns);
    switch (o) {
      case Outcome::kSuccess:
        ++k.success;
        break;
      case Outcome::kExpectedFailure:
        ++k.expected;
        break;
      case Outcome::kViolation:
        ++k.violations;
        a.violations.push_back({op, why});
        break;
    }
  }
  return a;
}

std::string SummaryTable(const Analysis& analysis) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-8s %7s %7s %9s %6s %9s %9s %9s\n", "kind", "ops", "ok",
                "expected", "bad", "p50 ms", "p99 ms", "max ms");
  out += line;
  for (const auto& [kind, k] : analysis.by_kind) {
    std::vector<int64_t> l = k.latencies_ns;
    std::sort(l.begin(), l.end());
    auto pct = [&](double p) -> double {
      if (l.empty()) return 0;
      size_t i = static_cast<size_t>(p * static_cast<double>(l.size() - 1) + 0.5);
      return static_cast<double>(l[std::min(i, l.size() - 1)]) / 1e6;
    };
    std::snprintf(line, sizeof line, "%-8s %7d %7d %9d %6d %9.1f %9.1f %9.1f\n", kind.c_str(),
                  k.count, k.success, k.expected, k.violations, pct(0.5), pct(0.99), pct(1.0));
    out += line;
  }
  return out;
}

std::string Describe(const OpRecord& r) {
  std::string s =
      "worker " + std::to_string(r.worker) + " #" + std::to_string(r.seq) + " " + r.kind + ":";
  for (const std::string& a : r.args) s += " " + a;
  if (r.end_ns == 0) return s + " (still running)";
  s += " -> exit " + std::to_string(r.exit_code) + " after " + Ms(r.end_ns - r.start_ns) + " ms";
  std::vector<std::string> errors = ErrorLines(r.err);
  if (!errors.empty()) {
    s += ": " + errors[0];
  } else if (!r.err.empty() && r.exit_code != 0) {
    s += ": " + r.err.substr(0, r.err.find('\n'));
  }
  return s;
}

}  // namespace imgstore::testing::stress
