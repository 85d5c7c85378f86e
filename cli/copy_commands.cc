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

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/progress.h"
#include "cli/registry_flags.h"
#include "cli/store_open.h"
#include "images/platform.h"
#include "registry/credentials.h"
#include "registry/registry_options.h"
#include "transports/transports.h"

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

Status RunPull(const GlobalOptions& global, const PullArgs& args) {
  store::PullOptions options;
  if (!args.platform.empty()) {
    Result<images::Platform> p = images::ParsePlatform(args.platform);
    if (!p.ok()) return p.status().WithContext("--platform");
    options.platform = *p;
  }
  options.names = args.names;
  options.verify_diff_ids = args.verify_diff_ids;
  options.max_parallel = args.max_parallel;
  Result<registry::RegistryOptions> reg = ToRegistryOptions(args.registry);
  if (!reg.ok()) return reg.status();
  Result<std::unique_ptr<images::ImageSource>> source =
      transports::OpenSource(Env::Default(), args.source, options.limits, *reg);
  if (!source.ok()) return source.status();
  options.operation = "pull " + (*source)->Describe();

  std::shared_ptr<ProgressDisplay> display = MakeDisplay(global, args.quiet);
  const bool debug = LogDebug(global);
  options.on_blobs = [display](const std::vector<images::Descriptor>& blobs) {
    display->Expect(blobs);
  };
  options.on_progress = [display, debug](const store::PullProgress& p) {
    display->Update(p);
    if (!debug) return;
    if (p.skipped) {
      std::fprintf(stderr, "imgstore: debug: blob %s skipped (already present)\n",
                   p.digest.ToString().c_str());
    } else if (p.done >= p.total) {
      std::fprintf(stderr, "imgstore: debug: blob %s written (%llu bytes)\n",
                   p.digest.ToString().c_str(), static_cast<unsigned long long>(p.done));
    }
  };

  Result<std::unique_ptr<store::Store>> store =
      OpenStore(global, [display](const std::string& line) { display->Message(line); });
  if (!store.ok()) return store.status();
  Result<store::PullResult> r = (*store)->Pull(**source, options);
  display->Finish();  // before the error line or the summary
  if (!r.ok()) return r.status();
  if (LogInfo(global)) {
    std::fprintf(stderr, "imgstore: pulled %s: %d new blobs, %s; manifest %s\n",
                 r->image.id.ToString().c_str(), r->blobs_written,
                 HumanSize(r->bytes_written).c_str(), r->image.manifest_digest.ToString().c_str());
  }
  if (args.quiet) return Status::OK();
  return WriteStdout(r->image.id.ToString() + "\n");
}

Status RunPush(const GlobalOptions& global, const PushArgs& args) {
  Result<registry::RegistryOptions> reg = ToRegistryOptions(args.registry);
  if (!reg.ok()) return reg.status();
  // `push NAME` pushes to the registry the name designates, as docker and podman do.
  const std::string dest_spec = args.destination.empty() ? args.image : args.destination;
  if (args.destination.empty()) {
    Result<transports::TransportSpec> t = transports::ParseTransportSpec(dest_spec);
    if (!t.ok() || t->kind != transports::TransportKind::kRegistry) {
      return Status(Code::kInvalidArgument,
                    "push " + args.image +
                        ": without DEST, IMAGE must be a registry reference (REGISTRY/NAME[:TAG])");
    }
  }
  Result<std::unique_ptr<images::ImageDestination>> dest =
      transports::OpenDestination(Env::Default(), dest_spec, *reg);
  if (!dest.ok()) return dest.status();
  std::shared_ptr<ProgressDisplay> display = MakeDisplay(global, args.quiet);
  Result<std::unique_ptr<store::Store>> store =
      OpenStore(global, [display](const std::string& line) { display->Message(line); });
  if (!store.ok()) return store.status();
  // Push by id, so that the digest printed is that of the image pushed even if the name moves
  // to another image meanwhile.
  Result<Digest> id = (*store)->ResolveImage(args.image);
  if (!id.ok()) return id.status();
  Result<store::ImageDetails> details = (*store)->InspectImage(id->ToString());
  if (!details.ok()) return details.status();
  store::PushOptions options;
  options.operation = "push " + args.image + " to " + (*dest)->Describe();
  options.max_parallel = args.max_parallel;
  options.on_progress = [display](const images::BlobProgress& p) { display->Update(p); };
  // Printed after the progress, which would draw over them.
  std::vector<std::string> warnings;
  options.on_warning = [&warnings](const std::string& line) { warnings.push_back(line); };
  Status s = (*store)->Push(id->ToString(), **dest, options);
  display->Finish();
  if (!args.quiet && global.log_level != "error") {
    for (const std::string& w : warnings)
      std::fprintf(stderr, "imgstore: warning: %s\n", w.c_str());
  }
  if (!s.ok()) return s;
  const std::string digest = details->summary.manifest_digest.ToString();
  if (!args.digestfile.empty()) {
    Status w = Env::Default()->WriteFileAtomically(args.digestfile, digest + "\n");
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
            Result<images::Platform> p = images::ParsePlatform(text);
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
