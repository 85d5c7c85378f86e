// `imgstore pull` and `imgstore push`: copying images between the store and the transports
// (docs/pull-push.md, "Commands").
//
// stdout carries only the result (the image id for pull, the manifest digest for push) so that
// scripts can capture it; progress goes to stderr, and only when stderr is a terminal.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/output.h"
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

// "sha256:0123456789ab": enough of a digest to tell blobs apart on one line.
std::string Short(const Digest& d) { return d.ToString().substr(0, 19); }

// One status line per blob on a terminal, redrawn at most every 100 ms.
class ProgressLine {
 public:
  void Update(const store::PullProgress& p) {
    const bool done = p.skipped || p.done >= p.total;
    auto now = std::chrono::steady_clock::now();
    if (!done && p.digest == current_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    current_ = p.digest;
    std::string line =
        p.skipped ? Short(p.digest) + ": already present"
                  : Short(p.digest) + ": " + HumanSize(p.done) + " / " + HumanSize(p.total);
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    if (done) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  Digest current_;
  std::chrono::steady_clock::time_point last_;
};

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

  auto bar = std::make_shared<ProgressLine>();
  const bool tty = !args.quiet && ::isatty(STDERR_FILENO) == 1;
  const bool debug = LogDebug(global);
  if (tty || debug) {
    options.on_progress = [bar, tty, debug](const store::PullProgress& p) {
      if (debug) {
        if (p.skipped) {
          std::fprintf(stderr, "imgstore: debug: blob %s skipped (already present)\n",
                       p.digest.ToString().c_str());
        } else if (p.done >= p.total) {
          std::fprintf(stderr, "imgstore: debug: blob %s written (%llu bytes)\n",
                       p.digest.ToString().c_str(), static_cast<unsigned long long>(p.done));
        }
      } else if (tty) {
        bar->Update(p);
      }
    };
  }

  Result<std::unique_ptr<store::Store>> store = OpenStore(global);
  if (!store.ok()) return store.status();
  Result<store::PullResult> r = (*store)->Pull(**source, options);
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
  Result<std::unique_ptr<store::Store>> store = OpenStore(global);
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
  Status s = (*store)->Push(id->ToString(), **dest, options);
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
