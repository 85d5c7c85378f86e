// The operation log of the multi-process stress test (docs/stress.md) and the checks run over
// it: every worker process appends one JSON line when an operation starts and one when it ends;
// the parent's watchdog reads the start lines of operations still running, and the analysis
// below decides, for the merged log, whether every outcome is accounted for. The checks live
// here, apart from the processes, so that a unit test can feed them a synthetic log and prove
// each one fires.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace imgstore::testing::stress {

// Monotonic nanoseconds (CLOCK_MONOTONIC: one clock for every process of the machine, so the
// logs of different workers can be ordered against each other).
int64_t NowNs();

// One operation: an `imgstore` run, or a check the worker made itself (kind "blobs": the layer
// blobs of an image that inspect showed; kind "write": a file written into a mount).
struct OpRecord {
  int worker = 0;
  int seq = 0;  // per worker, from 0
  std::string kind;
  std::vector<std::string> args;  // imgstore's arguments (after --root ROOT)
  int64_t start_ns = 0;
  int64_t end_ns = 0;  // 0 while running
  // CliResult's: the exit status, -SIGNAL, or -1000 when RunImgstore killed it at its timeout.
  int exit_code = 0;
  std::string err;  // all of stderr (for "blobs"/"write": the failure found, "" when none)
  // What the operation acted on, so that a "not known" failure can be pinned on another worker:
  std::string target_id;     // image id (sha256:...)
  std::string target_name;   // image name given on the command line
  std::string target_mount;  // mount name
  // When the target was last known to exist (start of the list that showed it, end of the
  // mount that made it); 0 when unknown.
  int64_t seen_ns = 0;
  // What the operation removed or moved on success: image ids (rmi "Deleted:"), names
  // (rmi "Untagged:", untag, tag/pull/commit giving a name), mounts (umount).
  std::vector<std::string> deleted_ids;
  std::vector<std::string> changed_names;
  std::vector<std::string> removed_mounts;
};

std::string ToJsonLine(const OpRecord& r);  // one line, no '\n'
std::optional<OpRecord> FromJsonLine(const std::string& line);

// The "start" line the watchdog reads: {"start":true,...} with worker, seq, kind, args, start_ns.
std::string StartJsonLine(const OpRecord& r);

// Reads a worker's log: the finished records, and the started ones that have no end line yet.
struct WorkerLog {
  std::vector<OpRecord> finished;
  std::vector<OpRecord> running;
};
WorkerLog ParseLog(const std::string& text);

struct AnalysisOptions {
  int64_t deadline_ns = 60'000'000'000;  // an operation that takes longer is a deadlock
};

// Why one operation broke an invariant.
struct Violation {
  OpRecord op;
  std::string why;
};

// The outcome of every operation of the merged logs.
enum class Outcome { kSuccess, kExpectedFailure, kViolation };

struct KindStats {
  int count = 0;
  int success = 0;
  int expected = 0;
  int violations = 0;
  std::vector<int64_t> latencies_ns;
};

struct Analysis {
  std::vector<Violation> violations;
  std::map<std::string, KindStats> by_kind;
};

// Classifies one operation against all the others (for attribution).
Outcome Classify(const OpRecord& op, const std::vector<OpRecord>& all,
                 const AnalysisOptions& options, std::string* why);

Analysis Analyze(const std::vector<OpRecord>& all, const AnalysisOptions& options);

// The table: kind, ops, ok, expected failures, violations, p50/p99/max in ms.
std::string SummaryTable(const Analysis& analysis);

// "worker 3 #17 rmi --force sha256:... exit 1 after 12 ms: imgstore: error: ..." for messages.
std::string Describe(const OpRecord& r);

// The lines of stderr that say "imgstore: error:".
std::vector<std::string> ErrorLines(const std::string& err);

// A busy error that must never reach a user (SQLite's "database is locked", SQLITE_BUSY, ...);
// the offending line, or "" when none.
std::string BusyLine(const std::string& err);

}  // namespace imgstore::testing::stress
