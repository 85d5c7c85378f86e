// `imgstore pull` and `imgstore push`: copying images between the store and the transports
// (docs/pull-push.md, "Commands").
//
// stdout carries only the result (the image id for pull, the manifest digest for push) so that
// scripts can capture it; progress goes to stderr (cli/progress.h: bars on a terminal, one line
// per blob otherwise, nothing with --quiet).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "imgstore/parse.hpp"
#include "imgstore/store.hpp"
#include "output.h"
#include "progress.h"
#include "registry_flags.h"
#include "store_open.h"

namespace imgstore::cli {
namespace {

struct PullArgs {
  std::string source;
  std::vector<std::string> names;
  std::string platform;
  bool quiet = false;
  bool verify_diff_ids = false;
  int max_parallel = 3;
  RegistryFlags registry;  // docs/registry.md
};

struct PushArgs {
  std::string image;
  std::string destination;  // "": the registry reference IMAGE itself
  std::string digestfile;
  bool quiet = false;
  int max_parallel = 3;
  RegistryFlags registry;
};

// The display for a command's flags. --log-level debug prints lines of its own between the
// progress lines, which a region redrawn in place would overwrite: it gets the plain lines.
std::shared_ptr<ProgressDisplay> MakeDisplay(const GlobalOptions& global, bool quiet) {
  ProgressMode mode = ProgressModeFor(quiet);
  if (mode == ProgressMode::kTerminal && LogDebug(global)) mode = ProgressMode::kLines;
  return std::make_shared<ProgressDisplay>(mode);
}

// The flags, checked before the store is opened so that a mistake in them changes nothing.
Status RunPull(const GlobalOptions& global, const PullArgs& args) {
  PullOptions options;
  if (!args.platform.empty()) {
    Result<Platform> p = ParsePlatform(args.platform);
    if (!p.ok()) return p.status().WithContext("--platform");
    options.platform = args.platform;
  }
  options.names = args.names;
  options.verify_diff_ids = args.verify_diff_ids;
  options.max_parallel = args.max_parallel;
  Result<RegistryOptions> reg = ToRegistryOptions(args.registry);
  if (!reg.ok()) return reg.status();
  options.registry = std::move(*reg);
  Result<TransportSpec> spec = ParseTransport(args.source);
  if (!spec.ok()) return spec.status();

  std::shared_ptr<ProgressDisplay> display = MakeDisplay(global, args.quiet);
  const bool debug = LogDebug(global);
  options.on_blobs = [display](size_t blobs, uint64_t bytes) { display->Expect(blobs, bytes); };
  options.on_progress = [display, debug](const Progress& p) {
    display->Update(p);
    if (!debug) return;
    if (p.skipped) {
      std::fprintf(stderr, "imgstore: debug: blob %s skipped (already present)\n",
                   p.digest.c_str());
    } else if (p.done >= p.total) {
      std::fprintf(stderr, "imgstore: debug: blob %s written (%llu bytes)\n", p.digest.c_str(),
                   static_cast<unsigned long long>(p.done));
    }
  };

  Result<std::unique_ptr<Store>> store =
      OpenStore(global, [display](const std::string& line) { display->Message(line); });
  if (!store.ok()) return store.status();
  Result<PullResult> r = (*store)->Pull(args.source, options);
  display->Finish();  // before the error line or the summary
  if (!r.ok()) return r.status();
  if (LogInfo(global)) {
    std::fprintf(stderr, "imgstore: pulled %s: %d new blobs, %s; manifest %s\n", r->id.c_str(),
                 r->blobs_written, HumanSize(r->bytes_written).c_str(), r->manifest_digest.c_str());
  }
  if (args.quiet) return Status::OK();
  return WriteStdout(r->id + "\n");
}

Status RunPush(const GlobalOptions& global, const PushArgs& args) {
  Result<RegistryOptions> reg = ToRegistryOptions(args.registry);
  if (!reg.ok()) return reg.status();
  // `push NAME` pushes to the registry the name designates, as docker and podman do.
  const std::string dest_spec = args.destination.empty() ? args.image : args.destination;
  Result<TransportSpec> t = ParseTransport(dest_spec);
  if (args.destination.empty() && (!t.ok() || t->transport != "docker")) {
    return Status(Code::kInvalidArgument,
                  "push " + args.image +
                      ": without DEST, IMAGE must be a registry reference (REGISTRY/NAME[:TAG])");
  }
  if (!t.ok()) return t.status();
  std::shared_ptr<ProgressDisplay> display = MakeDisplay(global, args.quiet);
  Result<std::unique_ptr<Store>> store =
      OpenStore(global, [display](const std::string& line) { display->Message(line); });
  if (!store.ok()) return store.status();
  // Resolved first for the store's own error ("image not known: ..."). The push resolves the
  // name once more and pushes by id: the digest it returns is that of the image it pushed, even
  // if the name moves meanwhile; the name stays in the operation's label (imgstore locks).
  Result<std::string> id = (*store)->Resolve(args.image);
  if (!id.ok()) return id.status();
  PushOptions options;
  options.registry = std::move(*reg);
  options.max_parallel = args.max_parallel;
  options.on_progress = [display](const Progress& p) { display->Update(p); };
  // Printed after the progress, which would draw over them.
  std::vector<std::string> warnings;
  options.on_warning = [&warnings](const std::string& line) { warnings.push_back(line); };
  Result<PushResult> r = (*store)->Push(args.image, dest_spec, options);
  display->Finish();
  if (!args.quiet && global.log_level != "error") {
    for (const std::string& w : warnings)
      std::fprintf(stderr, "imgstore: warning: %s\n", w.c_str());
  }
  if (!r.ok()) return r.status();
  const std::string& digest = r->manifest_digest;
  if (!args.digestfile.empty()) {
    Status w = WriteFileAtomically(args.digestfile, digest + "\n");
    if (!w.ok()) return w.WithContext("--digestfile");
  }
  if (args.quiet) return Status::OK();
  return WriteStdout(digest + "\n");
}

}  // namespace

void RegisterPullCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("pull",
                                     "copy an image into the store (registry, oci:, oci-archive:, "
                                     "docker-archive:); prints its id");
  auto a = std::make_shared<PullArgs>();
  sub->add_option("SOURCE", a->source,
                  "[docker://]REGISTRY/NAME[:TAG|@DIGEST], oci:DIR[:REF], oci-archive:FILE[:REF] "
                  "or docker-archive:FILE[:REF]")
      ->required();
  sub->add_option("--name", a->names, "give the image this name (repeatable)");
  AddRegistryFlags(sub, &a->registry);
  sub->add_option("--max-parallel", a->max_parallel, "blobs fetched at once (default 3)")
      ->check(CLI::Range(1, 64));
  sub->add_option("--platform", a->platform,
                  "OS/ARCH[/VARIANT] to choose from an index (default: this host's)")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            Result<Platform> p = ParsePlatform(text);
            return p.ok() ? std::string() : p.status().message();
          },
          "OS/ARCH[/VARIANT]"));
  sub->add_flag("-q,--quiet", a->quiet, "print nothing on success");
  sub->add_flag("--verify-diffid", a->verify_diff_ids,
                "also decompress each layer and check it against the config's diffID");
  AddCommand({sub, [&global, a] { return RunPull(global, *a); }});
}

void RegisterPushCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand(
      "push", "copy an image of the store to a destination; prints the manifest digest");
  auto a = std::make_shared<PushArgs>();
  sub->add_option("IMAGE", a->image, "name, id, unique id prefix or manifest digest")->required();
  sub->add_option("DEST", a->destination,
                  "[docker://]REGISTRY/NAME[:TAG], oci:DIR[:REF], oci-archive:FILE[:REF] or "
                  "docker-archive:FILE[:REF] (default: the registry IMAGE names)");
  sub->add_flag("-q,--quiet", a->quiet, "print nothing on success");
  sub->add_option("--digestfile", a->digestfile, "also write the manifest digest to this file");
  sub->add_option("--max-parallel", a->max_parallel, "blobs sent at once (default 3)")
      ->check(CLI::Range(1, 64));
  AddRegistryFlags(sub, &a->registry);
  AddCommand({sub, [&global, a] { return RunPush(global, *a); }});
}

}  // namespace imgstore::cli
