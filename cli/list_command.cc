// `imgstore list` (alias `images`): the images of the store as a table (one row per name), as
// JSON, or as ids only. One store call (a read snapshot) and one write to stdout.
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "cli/commands.h"
#include "cli/image_commands.h"
#include "cli/output.h"
#include "images/reference.h"

namespace imgstore::cli {
namespace {

struct ListOptions {
  std::string filter;
  std::string format = "table";
  bool quiet = false;
  bool digests = false;
  bool no_trunc = false;
};

std::string ShownId(const Digest& id, bool no_trunc) {
  return no_trunc ? id.ToString() : std::string(id.hex().substr(0, 12));
}

// The JSON of `list`, written directly: building a Json tree of 10,000 images first would cost
// more than the whole listing (docs/performance.md). Laid out as JsonText lays out a tree.
void AppendImagesJson(const std::vector<store::ImageSummary>& images, std::string& out) {
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
    const store::ImageSummary& s = images[i];
    out += i == 0 ? "  {\n    \"id\": " : ",\n  {\n    \"id\": ";
    AppendJsonString(out, s.id.ToString());
    field("names");
    if (s.names.empty()) out += "[]";
    for (size_t n = 0; n < s.names.size(); ++n) {
      out += n == 0 ? "[\n      " : ",\n      ";
      AppendJsonString(out, s.names[n]);
      if (n + 1 == s.names.size()) out += "\n    ]";
    }
    field("digest");
    AppendJsonString(out, s.manifest_digest.ToString());
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
bool RowWanted(const std::optional<images::Reference>& filter, const images::Reference& name) {
  if (!filter || filter->digest) return true;
  return filter->tag ? name.String() == filter->String()
                     : name.Repository() == filter->Repository();
}

void AppendTable(const std::vector<store::ImageSummary>& images,
                 const std::optional<images::Reference>& filter, const ListOptions& o,
                 std::string& out) {
  std::vector<std::string> header = {"REPOSITORY", "TAG"};
  if (o.digests) header.push_back("DIGEST");
  for (const char* h : {"IMAGE ID", "CREATED", "SIZE"}) header.push_back(h);
  Table table(std::move(header));
  const int64_t now = NowUnixNs();
  auto add = [&](std::string repository, std::string tag, const store::ImageSummary& s,
                 const std::string& id, const std::string& created, const std::string& size) {
    std::vector<std::string> row = {std::move(repository), std::move(tag)};
    if (o.digests) row.push_back(s.manifest_digest.ToString());
    row.push_back(id);
    row.push_back(created);
    row.push_back(size);
    table.AddRow(std::move(row));
  };
  for (const store::ImageSummary& s : images) {
    const std::string id = ShownId(s.id, o.no_trunc);
    const std::string created = HumanAge(s.created_unix_ns, now);
    const std::string size = HumanSize(s.size);
    if (s.names.empty()) add("<none>", "<none>", s, id, created, size);
    for (const std::string& name : s.names) {
      Result<images::Reference> ref = images::ParseReference(name);
      if (ref.ok()) {
        if (!RowWanted(filter, *ref)) continue;
        add(ref->FamiliarRepository(), ref->tag.value_or("<none>"), s, id, created, size);
      } else {
        add(name, "<none>", s, id, created, size);  // not expected: names are stored parsed
      }
    }
  }
  table.AppendTo(out);
}

Status RunList(const GlobalOptions& global, const ListOptions& o) {
  // Checked here too so that a bad filter is an error even where no store exists yet.
  std::optional<images::Reference> filter;
  if (!o.filter.empty()) {
    Result<images::Reference> ref = images::ParseReference(o.filter);
    if (!ref.ok()) return ref.status().WithContext("list");
    filter = std::move(*ref);
  }
  Result<std::unique_ptr<store::Store>> store = OpenExistingStore(global);
  if (!store.ok()) return store.status();
  std::vector<store::ImageSummary> images;
  if (*store) {
    Result<std::vector<store::ImageSummary>> listed = (*store)->ListImages(o.filter);
    if (!listed.ok()) return listed.status();
    images = std::move(*listed);
  }

  std::string out;
  if (o.quiet) {
    std::unordered_set<std::string_view> seen;
    out.reserve(images.size() * 72);
    for (const store::ImageSummary& s : images) {
      if (!seen.insert(s.id.ToString()).second) continue;
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
