// `imgstore unpack IMAGE DIR`: a flattened root filesystem of an image in a new directory,
// through the layer cache (docs/layers.md). Quiet on success; --log-level debug says which
// layers were extracted and which came from the cache; on a terminal one line per layer that is
// being extracted.

#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "image_commands.h"
#include "layer_progress.h"
#include "store_open.h"

namespace imgstore::cli {
namespace {

struct UnpackArgs {
  std::string image;
  std::string dir;
  bool no_cache = false;
};

Status RunUnpack(const GlobalOptions& global, const UnpackArgs& args) {
  Result<std::unique_ptr<Store>> store = OpenExistingStore(global);
  if (!store.ok()) return store.status();
  if (!*store) return NotKnownWithoutStore(args.image);

  UnpackOptions options;
  options.use_cache = !args.no_cache;
  ReportLayerProgress(global, options.layers);
  Result<UnpackResult> r = (*store)->Unpack(args.image, args.dir, options);
  if (!r.ok()) return r.status();
  if (LogInfo(global)) {
    std::fprintf(stderr, "imgstore: unpacked %s into %s: %d layers (%d extracted, %d cached)\n",
                 r->id.c_str(), args.dir.c_str(), r->layers, r->layers_extracted,
                 r->layers - r->layers_extracted);
  }
  return Status::OK();
}

}  // namespace

void RegisterLayerCommands(CLI::App& app, const GlobalOptions& global) {
  auto args = std::make_shared<UnpackArgs>();
  CLI::App* sub = app.add_subcommand(
      "unpack", "write the image's root filesystem into a new directory (through the layer cache)");
  sub->add_option("IMAGE", args->image, "name, id, unique id prefix or manifest digest")
      ->required();
  sub->add_option("DIR", args->dir, "directory to create (its parent must exist)")->required();
  sub->add_flag("--no-cache", args->no_cache,
                "extract layers that are not cached straight into DIR, without caching them");
  AddCommand({sub, [&global, args] { return RunUnpack(global, *args); }});

  // mount, umount, mounts: cli/mount_commands.cc
  RegisterMountCommands(app, global);
}

}  // namespace imgstore::cli
