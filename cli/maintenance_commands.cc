// `imgstore gc`, `df` and `check`: reclaiming space, showing it, and verifying the store.
// Output conventions (docs/gc.md): gc prints the digest of each blob it removed, one per line,
// and nothing when nothing was removed (quiet, scriptable, like `podman image prune` with ids);
// its summary line goes to stderr with --dry-run or --log-level info. df prints a table (or
// JSON). check prints one line per problem; it exits 1 when problems remain.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "imgstore/store.hpp"
#include "output.h"
#include "store_open.h"

namespace imgstore::cli {
namespace {

std::string Plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string GcSummary(const GcReport& r, bool dry_run) {
  std::string out = dry_run ? "would remove " : "removed ";
  out += Plural(r.blobs_removed.size(), "blob", "blobs") + " (" + HumanSize(r.bytes_removed) +
         "), " + Plural(static_cast<uint64_t>(r.manifests_removed), "manifest", "manifests") +
         ", " + Plural(static_cast<uint64_t>(r.layers_removed), "layer", "layers") + ", " +
         Plural(static_cast<uint64_t>(r.leases_removed), "dead lease", "dead leases");
  if (!dry_run) {
    out +=
        ", " + Plural(static_cast<uint64_t>(r.orphan_files_removed), "orphan file", "orphan files");
    out += ", " + Plural(static_cast<uint64_t>(r.lock_files_removed), "lock file", "lock files");
  }
  if (r.partial_downloads_removed > 0) {
    out += ", " +
           Plural(static_cast<uint64_t>(r.partial_downloads_removed), "partial download",
                  "partial downloads") +
           " (" + HumanSize(r.partial_bytes_removed) + ")";
  }
  if (r.skipped_busy > 0) {
    out += "; skipped " + std::to_string(r.skipped_busy) + " in use";
  }
  return out;
}

Status RunGc(const GlobalOptions& global, bool dry_run, const std::string& format) {
  Result<std::unique_ptr<Store>> st = OpenStore(global);
  if (!st.ok()) return st.status();
  GcOptions options;
  options.dry_run = dry_run;
  Result<GcReport> r = (*st)->Gc(options);
  if (!r.ok()) return r.status();
  if (format == "json") {
    Json blobs = Json::array();
    for (const std::string& d : r->blobs_removed) blobs.push_back(d);
    Json out = {{"dry_run", dry_run},
                {"blobs_removed", std::move(blobs)},
                {"bytes_removed", r->bytes_removed},
                {"manifests_removed", r->manifests_removed},
                {"layers_removed", r->layers_removed},
                {"leases_removed", r->leases_removed},
                {"orphan_files_removed", r->orphan_files_removed},
                {"lock_files_removed", r->lock_files_removed},
                {"skipped_busy", r->skipped_busy},
                {"partial_downloads_removed", r->partial_downloads_removed},
                {"partial_bytes_removed", r->partial_bytes_removed}};
    return WriteStdout(JsonText(out));
  }
  std::string text;
  for (const std::string& d : r->blobs_removed) text += d + "\n";
  CLI_RETURN_IF_ERROR(WriteStdout(text));
  if (dry_run || LogInfo(global)) {
    std::fprintf(stderr, "imgstore: %s\n", GcSummary(*r, dry_run).c_str());
  }
  return Status::OK();
}

std::string WithPercent(uint64_t part, uint64_t whole) {
  std::string out = HumanSize(part);
  if (whole > 0) out += " (" + std::to_string(part * 100 / whole) + "%)";
  return out;
}

Status RunDf(const GlobalOptions& global, const std::string& format) {
  Result<std::unique_ptr<Store>> st = OpenStore(global);
  if (!st.ok()) return st.status();
  Result<DiskUsage> u = (*st)->Df();
  if (!u.ok()) return u.status();
  if (format == "json") {
    Json out = {{"images", u->images},
                {"blobs", u->blobs},
                {"blob_bytes", u->blob_bytes},
                {"reclaimable_blobs", u->reclaimable_blobs},
                {"reclaimable_bytes", u->reclaimable_bytes},
                {"layers", u->layers},
                {"layer_bytes", u->layer_bytes},
                {"reclaimable_layers", u->reclaimable_layers},
                {"reclaimable_layer_bytes", u->reclaimable_layer_bytes},
                {"partial_downloads", u->partial_downloads},
                {"partial_bytes", u->partial_bytes}};
    return WriteStdout(JsonText(out));
  }
  // Images own no bytes of their own: their SIZE is what the blobs they use take (the blobs
  // nothing uses are the blobs' RECLAIMABLE).
  Table table({"TYPE", "TOTAL", "SIZE", "RECLAIMABLE"});
  table.AddRow(
      {"Images", std::to_string(u->images), HumanSize(u->blob_bytes - u->reclaimable_bytes), "0B"});
  table.AddRow({"Blobs", std::to_string(u->blobs), HumanSize(u->blob_bytes),
                WithPercent(u->reclaimable_bytes, u->blob_bytes)});
  table.AddRow({"Unpacked layers", std::to_string(u->layers), HumanSize(u->layer_bytes),
                WithPercent(u->reclaimable_layer_bytes, u->layer_bytes)});
  // Kept so that the next pull of their blobs resumes them; all of it is gc's to take.
  table.AddRow({"Partial downloads", std::to_string(u->partial_downloads),
                HumanSize(u->partial_bytes), HumanSize(u->partial_bytes)});
  std::string text;
  table.AppendTo(text);
  return WriteStdout(text);
}

Status RunCheck(const GlobalOptions& global, bool repair, bool verify_content,
                const std::string& format) {
  Result<std::unique_ptr<Store>> st = OpenStore(global);
  if (!st.ok()) return st.status();
  CheckOptions options;
  options.repair = repair;
  options.verify_content = verify_content;
  Result<CheckReport> r = (*st)->Check(options);
  if (!r.ok()) return r.status();
  if (format == "json") {
    Json problems = Json::array();
    for (const CheckProblem& p : r->problems) {
      problems.push_back(
          {{"kind", p.kind}, {"path", p.path}, {"message", p.message}, {"repaired", p.repaired}});
    }
    Json out = {{"clean", r->clean()},
                {"blobs_checked", r->blobs_checked},
                {"problems", std::move(problems)}};
    CLI_RETURN_IF_ERROR(WriteStdout(JsonText(out)));
  } else {
    std::string text;
    for (const CheckProblem& p : r->problems) {
      text += p.kind + ": " + p.message + (p.repaired ? " (repaired)" : "") + "\n";
    }
    CLI_RETURN_IF_ERROR(WriteStdout(text));
  }
  size_t left = 0;
  for (const CheckProblem& p : r->problems) left += p.repaired ? 0 : 1;
  if (left == 0) return Status::OK();
  std::string message = "check found " + Plural(r->problems.size(), "problem", "problems");
  if (repair) {
    message += ", " + std::to_string(r->problems.size() - left) + " repaired, " +
               std::to_string(left) + " left (see the lines above)";
  } else {
    message += " (imgstore check --repair fixes what can be fixed safely)";
  }
  return Status(Code::kCorruption, message);
}

}  // namespace

void RegisterGcCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand(
      "gc",
      "remove blobs, manifests and layers no image uses, and partial downloads nobody is "
      "resuming (prints removed blob digests)");
  auto dry_run = std::make_shared<bool>(false);
  auto format = std::make_shared<std::string>("text");
  sub->add_flag("--dry-run,-n", *dry_run, "show what would be removed, remove nothing");
  sub->add_option("--format", *format, "text or json")->check(CLI::IsMember({"text", "json"}));
  AddCommand({sub, [&global, dry_run, format] { return RunGc(global, *dry_run, *format); }});
}

void RegisterDfCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("df", "show the space used, and what gc would reclaim");
  auto format = std::make_shared<std::string>("table");
  sub->add_option("--format", *format, "table or json")->check(CLI::IsMember({"table", "json"}));
  AddCommand({sub, [&global, format] { return RunDf(global, *format); }});
}

void RegisterCheckCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand(
      "check", "verify the store (exit 1 when problems remain); --repair fixes what it safely can");
  auto repair = std::make_shared<bool>(false);
  auto verify = std::make_shared<bool>(false);
  auto format = std::make_shared<std::string>("text");
  sub->add_flag("--repair", *repair, "fix what can be fixed without losing referenced data");
  sub->add_flag("--verify-content", *verify, "also hash every blob (reads all of them)");
  sub->add_option("--format", *format, "text or json")->check(CLI::IsMember({"text", "json"}));
  AddCommand({sub, [&global, repair, verify, format] {
                return RunCheck(global, *repair, *verify, *format);
              }});
}

}  // namespace imgstore::cli
