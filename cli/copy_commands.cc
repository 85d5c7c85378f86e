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
  // Registry access (docs/registry.md). creds is a secret: it is parsed, never printed.
  std::string creds;
  std::string authfile;
  bool tls_verify = true;
  std::string cert_dir;
};

struct PushArgs {
  std::string image;
  std::string destination;
  bool quiet = false;
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
  registry::RegistryOptions reg;
  if (!args.creds.empty()) {
    Result<registry::Credentials> c = registry::ParseCredentials(args.creds);
    if (!c.ok()) return c.status().WithContext("--creds");
    reg.credentials = std::move(*c);
  }
  reg.auth_file = args.authfile;
  reg.tls_verify = args.tls_verify;
  reg.cert_dir = args.cert_dir;
  Result<std::unique_ptr<images::ImageSource>> source =
      transports::OpenSource(Env::Default(), args.source, options.limits, reg);
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
  Result<std::unique_ptr<images::ImageDestination>> dest =
      transports::OpenDestination(Env::Default(), args.destination);
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
  Status s = (*store)->Push(id->ToString(), **dest, options);
  if (!s.ok()) return s;
  if (args.quiet) return Status::OK();
  return WriteStdout(details->summary.manifest_digest.ToString() + "\n");
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
  sub->add_option("--creds", a->creds, "registry credentials USER:PASSWORD");
  sub->add_option("--authfile", a->authfile,
                  "registry auth file (default: containers auth.json, ~/.docker/config.json)");
  sub->add_option("--tls-verify", a->tls_verify,
                  "verify the registry's TLS certificate and require https (default true)");
  sub->add_option("--cert-dir", a->cert_dir,
                  "directory with the registry's CA (*.crt) and client.cert/client.key");
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
                  "oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REF]")
      ->required();
  sub->add_flag("-q,--quiet", a->quiet, "print nothing on success");
  AddCommand({sub, [&global, a] { return RunPush(global, *a); }});
}

}  // namespace imgstore::cli
