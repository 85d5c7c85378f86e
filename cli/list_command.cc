// `imgstore list` (alias `images`): the images of the store as a table (one row per name), as
// JSON, or as ids only. One store call (a read snapshot) and one write to stdout.
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "commands.h"
#include "image_commands.h"
#include "imgstore/parse.hpp"
#include "imgstore/store.hpp"
#include "output.h"

namespace imgstore::cli {
namespace {

struct ListOptions {
  std::string filter;
  std::string format = "table";
  bool quiet = false;
  bool digests = false;
  bool no_trunc = false;
};

// "sha256:HEX" → the first 12 hex digits, as docker shows ids.
std::string ShownId(const std::string& id, bool no_trunc) {
  if (no_trunc) return id;
  const size_t colon = id.find(':');
  return id.substr(colon == std::string::npos ? 0 : colon + 1, 12);
}

// The JSON of `list`, written directly: building a Json tree of 10,000 images first would cost
// more than the whole listing (docs/performance.md). Laid out as JsonText lays out a tree.
void AppendImagesJson(const std::vector<ImageSummary>& images, std::string& out) {
  if (images.empty()) {
    out += "[]\n";
    return;
  }
  out.reserve(images.size() * 600);
  out += "[\n";
  auto field = [&out](std::string_view key) {
    out += ",\n    \"";
    out += key;
    out += "\": ";
  };
  for (size_t i = 0; i < images.size(); ++i) {
    const ImageSummary& s = images[i];
    out += i == 0 ? "  {\n    \"id\": " : ",\n  {\n    \"id\": ";
    AppendJsonString(out, s.id);
    field("names");
    if (s.names.empty()) out += "[]";
    for (size_t n = 0; n < s.names.size(); ++n) {
      out += n == 0 ? "[\n      " : ",\n      ";
      AppendJsonString(out, s.names[n]);
      if (n + 1 == s.names.size()) out += "\n    ]";
    }
    field("digest");
    AppendJsonString(out, s.manifest_digest);
    field("size");
    out += std::to_string(s.size);
    field("created");
    if (s.created.empty()) {
      out += "null";
    } else {
      AppendJsonString(out, s.created);
    }
    field("added");
    AppendJsonString(out, FormatRfc3339(s.added_unix_ns));
    field("os");
    AppendJsonString(out, s.os);
    field("architecture");
    AppendJsonString(out, s.architecture);
    field("variant");
    AppendJsonString(out, s.variant);
    out += "\n  }";
  }
  out += "\n]\n";
}

// docker shows only the rows of the names that a name filter asks for: `list alpine` does not show
// the other names of an alpine image. A digest filter selects an image, so all its rows show.
bool RowWanted(const std::optional<Reference>& filter, const Reference& name) {
  if (!filter || !filter->digest.empty()) return true;
  return !filter->tag.empty() ? name.name == filter->name : name.repository == filter->repository;
}

void AppendTable(const std::vector<ImageSummary>& images, const std::optional<Reference>& filter,
                 const ListOptions& o, std::string& out) {
  std::vector<std::string> header = {"REPOSITORY", "TAG"};
  if (o.digests) header.push_back("DIGEST");
  for (const char* h : {"IMAGE ID", "CREATED", "SIZE"}) header.push_back(h);
  Table table(std::move(header));
  const int64_t now = NowUnixNs();
  auto add = [&](std::string repository, std::string tag, const ImageSummary& s,
                 const std::string& id, const std::string& created, const std::string& size) {
    std::vector<std::string> row = {std::move(repository), std::move(tag)};
    if (o.digests) row.push_back(s.manifest_digest);
    row.push_back(id);
    row.push_back(created);
    row.push_back(size);
    table.AddRow(std::move(row));
  };
  for (const ImageSummary& s : images) {
    const std::string id = ShownId(s.id, o.no_trunc);
    const std::string created = HumanAge(s.created_unix_ns, now);
    const std::string size = HumanSize(s.size);
    if (s.names.empty()) add("<none>", "<none>", s, id, created, size);
    for (const std::string& name : s.names) {
      Result<Reference> ref = ParseReference(name);
      if (ref.ok()) {
        if (!RowWanted(filter, *ref)) continue;
        add(ref->familiar_repository, ref->tag.empty() ? "<none>" : ref->tag, s, id, created, size);
      } else {
        add(name, "<none>", s, id, created, size);  // not expected: names are stored parsed
      }
    }
  }
  table.AppendTo(out);
}

Status RunList(const GlobalOptions& global, const ListOptions& o) {
  // Checked here too so that a bad filter is an error even where no store exists yet.
  std::optional<Reference> filter;
  if (!o.filter.empty()) {
    Result<Reference> ref = ParseReference(o.filter);
    if (!ref.ok()) return ref.status().WithContext("list");
    filter = std::move(*ref);
  }
  Result<std::unique_ptr<Store>> store = OpenExistingStore(global);
  if (!store.ok()) return store.status();
  std::vector<ImageSummary> images;
  if (*store) {
    Result<std::vector<ImageSummary>> listed = (*store)->List(o.filter);
    if (!listed.ok()) return listed.status();
    images = std::move(*listed);
  }

  std::string out;
  if (o.quiet) {
    std::unordered_set<std::string_view> seen;
    out.reserve(images.size() * 72);
    for (const ImageSummary& s : images) {
      if (!seen.insert(s.id).second) continue;
      out += ShownId(s.id, o.no_trunc);
      out += '\n';
    }
  } else if (o.format == "json") {
    AppendImagesJson(images, out);
  } else {
    AppendTable(images, filter, o, out);
  }
  return WriteStdout(out);
}

}  // namespace

void RegisterListCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("list", "list images (one row per name)");
  sub->alias("images");
  auto o = std::make_shared<ListOptions>();
  sub->add_option("REFERENCE", o->filter,
                  "only images of this name (with a tag), of this repository (without), or of "
                  "this manifest digest (NAME@sha256:...)");
  CLI::Option* format = sub->add_option("--format", o->format, "table or json")
                            ->check(CLI::IsMember({"table", "json"}));
  sub->add_flag("-q,--quiet", o->quiet, "print image ids only (each once)")->excludes(format);
  sub->add_flag("--digests", o->digests, "add a DIGEST column (the manifest digest)");
  sub->add_flag("--no-trunc", o->no_trunc, "full image ids (sha256:...)");
  AddCommand({sub, [&global, o] { return RunList(global, *o); }});
}

}  // namespace imgstore::cli
