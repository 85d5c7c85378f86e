// `imgstore commit NAME|DIR NEW-NAME [--base IMAGE]`: the changes of a mount (or of a directory
// against --base) become a new image on top of the base image (docs/commit.md). Prints the new
// image id, as `podman commit` does; --format json prints the id, the layer and the names.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "imgstore/store.hpp"
#include "output.h"
#include "store_open.h"

namespace imgstore::cli {
namespace {

struct CommitArgs {
  std::string source;
  std::string name;
  std::string base;
  std::string compression = "gzip";
  std::string author;
  std::string message;
  std::string format = "text";
};

Status RunCommit(const GlobalOptions& global, const CommitArgs& args) {
  Result<std::unique_ptr<Store>> store = OpenStore(global);
  if (!store.ok()) return store.status();
  CommitOptions options;
  options.compression = args.compression;
  if (!args.name.empty()) options.names = {args.name};
  options.author = args.author;
  options.message = args.message;
  Result<CommitResult> r = (*store)->Commit(args.source, args.base, options);
  if (!r.ok()) return r.status();
  if (args.format == "json") {
    Json out = Json::object();
    out["id"] = r->id;
    out["manifest_digest"] = r->manifest_digest;
    if (r->layer_digest.empty()) {
      out["layer"] = nullptr;
    } else {
      Json layer = Json::object();
      layer["digest"] = r->layer_digest;
      layer["size"] = r->layer_size;
      layer["diff_id"] = r->diff_id;
      out["layer"] = std::move(layer);
    }
    out["names"] = options.names;
    return WriteStdout(JsonText(out));
  }
  if (LogInfo(global)) {
    std::fprintf(stderr, "imgstore: committed %s: %s\n", args.source.c_str(),
                 r->layer_digest.empty() ? "no changes, no layer added"
                                         : ("layer " + r->layer_digest).c_str());
  }
  return WriteStdout(r->id + "\n");
}

}  // namespace

void RegisterCommitCommand(CLI::App& app, const GlobalOptions& global) {
  auto args = std::make_shared<CommitArgs>();
  CLI::App* sub = app.add_subcommand(
      "commit", "make a new image from the changes of a mount (or of a directory, with --base)");
  sub->add_option("SOURCE", args->source,
                  "a mount's name or path; with --base, a directory to compare with that image")
      ->required();
  sub->add_option("NEW-NAME", args->name, "name of the new image (default tag latest)");
  sub->add_option("--base", args->base, "the image SOURCE (a directory) is compared with");
  sub->add_option("--compression", args->compression, "of the new layer: gzip or zstd")
      ->check(CLI::IsMember({"gzip", "zstd"}));
  sub->add_option("--author", args->author, "the config's author and the history entry's");
  sub->add_option("-m,--message", args->message, "the history entry's comment");
  sub->add_option("--format", args->format, "text or json")->check(CLI::IsMember({"text", "json"}));
  AddCommand({sub, [&global, args] { return RunCommit(global, *args); }});
}

}  // namespace imgstore::cli
