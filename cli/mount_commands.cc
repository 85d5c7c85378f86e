// `imgstore mount IMAGE` (prints the mount point), `imgstore umount NAME|PATH...` and
// `imgstore mounts` (a table or JSON): a container's writable view of an image (docs/layers.md,
// "Mounts").

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "image_commands.h"
#include "imgstore/parse.hpp"
#include "imgstore/store.hpp"
#include "layer_progress.h"
#include "output.h"
#include "store_open.h"

namespace imgstore::cli {
namespace {

struct MountArgs {
  std::string image;
  std::string name;
  std::string type = "auto";
};

Status RunMount(const GlobalOptions& global, const MountArgs& args) {
  Result<std::unique_ptr<Store>> store = OpenExistingStore(global);
  if (!store.ok()) return store.status();
  if (!*store) return NotKnownWithoutStore(args.image);

  MountOptions options;
  options.name = args.name;
  options.kind = args.type;
  ReportLayerProgress(global, options.layers);
  Result<MountInfo> m = (*store)->Mount(args.image, options);
  if (!m.ok()) return m.status();
  if (LogInfo(global)) {
    std::fprintf(stderr, "imgstore: mounted %s as %s (%s, %zu layers)\n", m->image_id.c_str(),
                 m->name.c_str(), m->kind.c_str(), m->layers.size());
  }
  return WriteStdout(m->path + "\n");
}

Status RunUmount(const GlobalOptions& global, const std::vector<std::string>& targets) {
  Result<std::unique_ptr<Store>> store = OpenExistingStore(global);
  if (!store.ok()) return store.status();
  std::vector<Status> errors;
  for (const std::string& t : targets) {
    Status s = *store ? (*store)->Unmount(t)
                      : Status(Code::kNotFound, "mount not known: " + t);  // no store yet
    if (!s.ok()) errors.push_back(std::move(s));
  }
  return ReportAll(std::move(errors));
}

// The image column: the name it was mounted by in docker's short form, else the short id.
std::string ShownImage(const MountInfo& m) {
  if (!m.image_name.empty()) {
    Result<Reference> ref = ParseReference(m.image_name);
    if (ref.ok()) {
      return ref->familiar_repository + (ref->tag.empty() ? std::string() : ":" + ref->tag);
    }
    return m.image_name;
  }
  const size_t colon = m.image_id.find(':');
  return m.image_id.substr(colon == std::string::npos ? 0 : colon + 1, 12);
}

Json MountJson(const MountInfo& m) {
  Json layers = Json::array();
  for (const std::string& c : m.layers) layers.push_back(c);
  return Json{{"name", m.name},
              {"image_id", m.image_id},
              {"image_name", m.image_name},
              {"manifest_digest", m.manifest_digest},
              {"type", m.kind},
              {"mounted", m.mounted},
              {"path", m.path},
              {"upper_dir", m.upper_dir},
              {"created", FormatRfc3339(m.created_unix_ns)},
              {"layers", std::move(layers)}};
}

Status RunMounts(const GlobalOptions& global, const std::string& format) {
  Result<std::unique_ptr<Store>> store = OpenExistingStore(global);
  if (!store.ok()) return store.status();
  std::vector<MountInfo> list;
  if (*store) {
    Result<std::vector<MountInfo>> listed = (*store)->Mounts();
    if (!listed.ok()) return listed.status();
    list = std::move(*listed);
  }
  std::string out;
  if (format == "json") {
    Json all = Json::array();
    for (const MountInfo& m : list) all.push_back(MountJson(m));
    out = JsonText(all);
  } else {
    Table table({"NAME", "IMAGE", "TYPE", "MOUNTED", "CREATED", "PATH"});
    const int64_t now = NowUnixNs();
    for (const MountInfo& m : list) {
      table.AddRow({m.name, ShownImage(m), m.kind, m.mounted ? "yes" : "no",
                    HumanAge(m.created_unix_ns, now), m.path});
    }
    table.AppendTo(out);
  }
  return WriteStdout(out);
}

}  // namespace

void RegisterMountCommands(CLI::App& app, const GlobalOptions& global) {
  {
    auto args = std::make_shared<MountArgs>();
    CLI::App* sub = app.add_subcommand(
        "mount", "make a writable view of an image (overlayfs, or a copy) and print its path");
    sub->add_option("IMAGE", args->image, "name, id, unique id prefix or manifest digest")
        ->required();
    sub->add_option("--name", args->name,
                    "the mount's name (default: generated, e.g. alpine-1f2e3d4c)");
    sub->add_option("--type", args->type,
                    "auto (overlay where possible, else copy), overlay, or copy")
        ->check(CLI::IsMember({"auto", "overlay", "copy"}));
    AddCommand({sub, [&global, args] { return RunMount(global, *args); }});
  }
  {
    auto targets = std::make_shared<std::vector<std::string>>();
    CLI::App* sub =
        app.add_subcommand("umount", "unmount and remove mounts (their changes are lost)");
    sub->alias("unmount");
    sub->add_option("MOUNT", *targets, "a mount's name or path")->required();
    AddCommand({sub, [&global, targets] { return RunUmount(global, *targets); }});
  }
  {
    auto format = std::make_shared<std::string>("table");
    CLI::App* sub = app.add_subcommand("mounts", "list the mounts");
    sub->add_option("--format", *format, "table or json")->check(CLI::IsMember({"table", "json"}));
    AddCommand({sub, [&global, format] { return RunMounts(global, *format); }});
  }
}

}  // namespace imgstore::cli
