// `imgstore locks`: who holds and who waits for the store's locks, and the leases.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "imgstore/parse.hpp"
#include "imgstore/store.hpp"
#include "output.h"

namespace imgstore::cli {
namespace {

int64_t NowNs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::string Age(int64_t since_ns) {
  return FormatDuration(std::chrono::nanoseconds(std::max<int64_t>(0, NowNs() - since_ns)));
}

Status RunLocks(const GlobalOptions& global, bool all, const std::string& format) {
  // Without opening the store: this must answer while a writer holds the store's locks.
  Result<LocksReport> report = Store::ListLocks(global.root, all);
  if (!report.ok()) return report.status();
  const std::vector<LockEntry>& locks = report->locks;
  const std::vector<LeaseEntry>& leases = report->leases;

  if (format == "json") {
    nlohmann::json out = {{"locks", nlohmann::json::array()}, {"leases", nlohmann::json::array()}};
    auto holder = [](const LockHolder& h) {
      return nlohmann::json{{"pid", h.pid},
                            {"mode", h.mode},
                            {"operation", h.operation},
                            {"since_unix_ns", h.since_unix_ns},
                            {"threads", h.threads}};
    };
    for (const auto& l : locks) {
      nlohmann::json j = {{"name", l.name},
                          {"holders", nlohmann::json::array()},
                          {"waiters", nlohmann::json::array()}};
      for (const auto& h : l.holders) j["holders"].push_back(holder(h));
      for (const auto& w : l.waiters) j["waiters"].push_back(holder(w));
      out["locks"].push_back(std::move(j));
    }
    for (const auto& le : leases) {
      out["leases"].push_back({{"id", le.id},
                               {"pid", le.pid},
                               {"label", le.label},
                               {"since_unix_ns", le.since_unix_ns},
                               {"alive", le.alive}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return Status::OK();
  }

  std::printf("%-40s %-8s %-8s %-11s %-8s %s\n", "LOCK", "STATE", "PID", "MODE", "FOR",
              "OPERATION");
  for (const auto& l : locks) {
    if (l.holders.empty() && l.waiters.empty()) {
      std::printf("%-40s %-8s\n", l.name.c_str(), "free");
    }
    for (const auto& h : l.holders) {
      std::printf("%-40s %-8s %-8d %-11s %-8s %s\n", l.name.c_str(), "held", h.pid, h.mode.c_str(),
                  Age(h.since_unix_ns).c_str(), h.operation.c_str());
    }
    for (const auto& w : l.waiters) {
      std::printf("%-40s %-8s %-8d %-11s %-8s %s\n", l.name.c_str(), "waiting", w.pid,
                  w.mode.c_str(), Age(w.since_unix_ns).c_str(), w.operation.c_str());
    }
  }
  for (const auto& le : leases) {
    std::printf("%-40s %-8s %-8d %-11s %-8s %s\n", ("lease " + le.id).c_str(),
                le.alive ? "held" : "dead", le.pid, "lease", Age(le.since_unix_ns).c_str(),
                le.label.c_str());
  }
  return Status::OK();
}

}  // namespace

void RegisterLocksCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("locks", "show who holds and who waits for the store's locks");
  auto all = std::make_shared<bool>(false);
  auto format = std::make_shared<std::string>("table");
  sub->add_flag("--all", *all, "also list locks nobody holds");
  sub->add_option("--format", *format, "table or json")->check(CLI::IsMember({"table", "json"}));
  AddCommand({sub, [&global, all, format] { return RunLocks(global, *all, *format); }});
}

}  // namespace imgstore::cli
