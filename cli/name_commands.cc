// `imgstore tag`, `untag` and `rmi`: giving images names and taking them away. Every argument
// is checked before anything changes, so a typo changes nothing in the store.
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "image_commands.h"
#include "imgstore/parse.hpp"
#include "imgstore/store.hpp"
#include "output.h"

namespace imgstore::cli {
namespace {

// The checks Store::Tag and Store::Untag make of a name, done for all names before the first
// change (and where no store exists).
Status CheckNames(const std::vector<std::string>& names, std::string_view command) {
  for (const std::string& n : names) {
    Result<Reference> ref = ParseReference(n);
    if (!ref.ok()) return ref.status().WithContext(command);
    if (!ref->digest.empty()) {
      return Status(Code::kInvalidArgument, std::string(command) + ": invalid name \"" + n +
                                                "\": a name cannot contain a digest");
    }
  }
  return Status::OK();
}

std::string Familiar(const std::string& normalized) {
  Result<Reference> ref = ParseReference(normalized);
  return ref.ok() ? ref->familiar : normalized;
}

Status RunTag(const GlobalOptions& global, const std::string& image,
              const std::vector<std::string>& names) {
  CLI_RETURN_IF_ERROR(CheckNames(names, "tag"));
  Result<std::unique_ptr<Store>> store = OpenExistingStore(global);
  if (!store.ok()) return store.status();
  if (!*store) return NotKnownWithoutStore(image);
  // Resolved once, so that every name goes to the same image even if `image` is itself one of
  // the names, or another process moves it meanwhile.
  Result<std::string> id = (*store)->Resolve(image);
  if (!id.ok()) return id.status();
  for (const std::string& name : names) {
    CLI_RETURN_IF_ERROR((*store)->Tag(*id, name));
  }
  return Status::OK();
}

Status RunUntag(const GlobalOptions& global, const std::string& image,
                const std::vector<std::string>& names) {
  CLI_RETURN_IF_ERROR(CheckNames(names, "untag"));
  Result<std::unique_ptr<Store>> store = OpenExistingStore(global);
  if (!store.ok()) return store.status();
  if (!*store) return NotKnownWithoutStore(image);
  return (*store)->Untag(image, names);  // one transaction: all the names or none
}

// docker's rmi: "Untagged: NAME" for every name removed, "Deleted: ID" for a removed image record
// (its blobs stay until gc). Arguments that do not resolve are reported and nothing is removed;
// a removal that fails later (an image with several names, without --force) is reported and the
// rest go on.
Status RunRmi(const GlobalOptions& global, const std::vector<std::string>& args, bool force) {
  Result<std::unique_ptr<Store>> store = OpenExistingStore(global);
  if (!store.ok()) return store.status();
  std::vector<Status> errors;
  for (const std::string& arg : args) {
    if (!*store) {
      errors.push_back(NotKnownWithoutStore(arg));
    } else if (Result<std::string> id = (*store)->Resolve(arg); !id.ok()) {
      errors.push_back(id.status());
    }
  }
  if (!errors.empty()) return ReportAll(std::move(errors));

  for (const std::string& arg : args) {
    Result<RemoveResult> r = (*store)->Remove(arg, force);
    if (!r.ok()) {
      errors.push_back(r.status());
      continue;
    }
    std::string out;
    for (const std::string& name : r->untagged) out += "Untagged: " + Familiar(name) + "\n";
    if (!r->deleted.empty()) out += "Deleted: " + r->deleted + "\n";
    CLI_RETURN_IF_ERROR(WriteStdout(out));
  }
  return ReportAll(std::move(errors));
}

}  // namespace

void RegisterTagCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("tag", "give an image more names");
  auto image = std::make_shared<std::string>();
  auto names = std::make_shared<std::vector<std::string>>();
  sub->add_option("IMAGE", *image, "name, id, unique id prefix or manifest digest")->required();
  sub->add_option("NAME", *names, "new names (a name another image holds moves to this one)")
      ->required();
  AddCommand({sub, [&global, image, names] { return RunTag(global, *image, *names); }});
}

void RegisterUntagCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub =
      app.add_subcommand("untag", "remove names of an image (all of them if none is given)");
  auto image = std::make_shared<std::string>();
  auto names = std::make_shared<std::vector<std::string>>();
  sub->add_option("IMAGE", *image, "name, id, unique id prefix or manifest digest")->required();
  sub->add_option("NAME", *names, "names of the image to remove");
  AddCommand({sub, [&global, image, names] { return RunUntag(global, *image, *names); }});
}

void RegisterRmiCommand(CLI::App& app, const GlobalOptions& global) {
  CLI::App* sub = app.add_subcommand("rmi", "remove images (their blobs go at the next gc)");
  auto args = std::make_shared<std::vector<std::string>>();
  auto force = std::make_shared<bool>(false);
  sub->add_option("IMAGE", *args, "name, id, unique id prefix or manifest digest")->required();
  sub->add_flag("-f,--force", *force, "remove the image even when it has several names");
  AddCommand({sub, [&global, args, force] { return RunRmi(global, *args, *force); }});
}

}  // namespace imgstore::cli
