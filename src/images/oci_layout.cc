// OCI image layout reader and writer (see oci_layout.h and docs/oci-layout.md).
#include "images/oci_layout.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "images/json_fields.h"
#include "images/media_types.h"

namespace imgstore::images {
namespace {

using internal::CatchAll;
using internal::Json;

constexpr uint64_t kMaxOciLayoutFileBytes = 64 * 1024;
constexpr size_t kCopyChunk = 1 << 20;
// Nested indexes deeper than this are refused (a loop of indexes would otherwise never end).
constexpr int kMaxIndexNesting = 8;

// ASCII only, whatever the locale: the grammar is [A-Za-z0-9].
bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool IsValidRefComponent(std::string_view c) {
  size_t i = 0;
  auto alnums = [&] {
    size_t start = i;
    while (i < c.size() && IsAlnum(c[i])) ++i;
    return i > start;
  };
  if (!alnums()) return false;
  while (i < c.size()) {
    if (c[i] == '-' && i + 1 < c.size() && c[i + 1] == '-') {
      i += 2;
    } else if (std::string_view("-._:@+").find(c[i]) != std::string_view::npos) {
      ++i;
    } else {
      return false;
    }
    if (!alnums()) return false;
  }
  return true;
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

std::string RefOf(const Descriptor& d) {
  auto it = d.annotations.find(std::string(kOciRefNameAnnotation));
  return it == d.annotations.end() ? std::string() : it->second;
}

// Checks the layout's oci-layout file. kNotFound when absent.
Status CheckOciLayoutFile(const OciLayoutFiles& files) {
  const std::string path = files.Display("oci-layout");
  Result<std::string> bytes = files.ReadFile("oci-layout", kMaxOciLayoutFileBytes);
  if (!bytes.ok()) {
    if (bytes.status().code() == Code::kNotFound) {
      return Status(Code::kNotFound,
                    files.name() + " is not an OCI layout: it has no oci-layout file");
    }
    return bytes.status();
  }
  return CatchAll([&]() -> Status {
    Result<Json> json = internal::ParseJsonObject(*bytes, 8);
    if (!json.ok()) return json.status().WithContext(path);
    std::string version;
    IMGSTORE_RETURN_IF_ERROR(
        internal::ReadRequiredString(*json, "imageLayoutVersion", "", &version).WithContext(path));
    if (version != kOciLayoutVersion) {
      return Status(Code::kUnsupported, path + ": imageLayoutVersion \"" + version +
                                            "\" is not supported (only " +
                                            std::string(kOciLayoutVersion) + ")");
    }
    return Status::OK();
  });
}

// A layout directory read through Env.
class DirectoryFiles : public OciLayoutFiles {
 public:
  DirectoryFiles(Env* env, std::string dir) : env_(env), dir_(std::move(dir)) {}
  const std::string& name() const override { return dir_; }
  std::string Display(const std::string& rel) const override { return dir_ + "/" + rel; }
  Result<std::string> ReadFile(const std::string& rel, uint64_t max_bytes) const override {
    return env_->ReadFileToString(Display(rel), max_bytes);
  }
  Result<FileStat> Stat(const std::string& rel) const override { return env_->Stat(Display(rel)); }
  Result<std::unique_ptr<SequentialFile>> Open(const std::string& rel) const override {
    return env_->NewSequentialFile(Display(rel));
  }

 private:
  Env* env_;
  std::string dir_;
};

std::string BlobRel(const Digest& digest) {
  return "blobs/" + std::string(digest.algorithm()) + "/" + std::string(digest.hex());
}

Json DescriptorJson(const Descriptor& d) {
  Json j = Json::object();
  j["mediaType"] = d.media_type;
  j["digest"] = d.digest.ToString();
  j["size"] = d.size;
  if (!d.artifact_type.empty()) j["artifactType"] = d.artifact_type;
  if (!d.annotations.empty()) {
    Json a = Json::object();
    for (const auto& [k, v] : d.annotations) a[k] = v;
    j["annotations"] = std::move(a);
  }
  return j;
}

}  // namespace

bool IsValidOciRefName(std::string_view ref) {
  if (ref.empty()) return false;
  size_t start = 0;
  while (true) {
    size_t slash = ref.find('/', start);
    std::string_view comp =
        ref.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!IsValidRefComponent(comp)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

Result<OciLayoutLocation> ParseOciLayoutLocation(std::string_view text) {
  std::string_view rest = text;
  if (rest.starts_with("oci:")) rest.remove_prefix(4);
  OciLayoutLocation loc;
  size_t colon = rest.find(':');
  loc.path = std::string(rest.substr(0, colon));
  if (colon != std::string_view::npos) loc.ref = std::string(rest.substr(colon + 1));
  if (loc.path.empty()) {
    return Status(Code::kInvalidArgument,
                  "invalid OCI layout reference \"" + std::string(text) + "\": empty path");
  }
  if (!loc.ref.empty() && !IsValidOciRefName(loc.ref)) {
    return Status(Code::kInvalidArgument, "invalid OCI layout reference \"" + std::string(text) +
                                              "\": \"" + loc.ref + "\" is not a valid ref name");
  }
  return loc;
}

// --- OciBlobReader ----------------------------------------------------------------------------

Result<size_t> OciBlobReader::Read(std::span<std::byte> buf) {
  if (verified_ || buf.empty()) return size_t{0};
  Result<size_t> n = file_->Read(buf);
  if (!n.ok()) return n.status();
  const std::string& name = descriptor_.digest.ToString();
  if (*n > 0) {
    if (hasher_.size() + *n > size()) {
      return Status(Code::kCorruption, "blob " + name + " (" + path() +
                                           ") is larger than its declared size of " +
                                           std::to_string(size()) + " bytes");
    }
    hasher_.Update(buf.first(*n));
    return n;
  }
  if (hasher_.size() != size()) {
    return Status(Code::kCorruption, "blob " + name + " (" + path() +
                                         ") is truncated: " + std::to_string(hasher_.size()) +
                                         " of " + std::to_string(size()) + " bytes");
  }
  Digest got = hasher_.Finish();
  if (got != descriptor_.digest) {
    return Status(Code::kCorruption,
                  "blob " + name + " (" + path() + ") has digest " + got.ToString());
  }
  verified_ = true;
  return size_t{0};
}

Status OciBlobReader::VerifyToEnd() {
  std::vector<std::byte> buf(kCopyChunk);
  while (true) {
    Result<size_t> n = Read(buf);
    if (!n.ok()) return n.status();
    if (*n == 0) return Status::OK();
  }
}

// --- OciLayoutReader --------------------------------------------------------------------------

Result<OciLayoutReader> OciLayoutReader::Open(Env* env, std::string dir,
                                              const ParseLimits& limits) {
  return Open(std::make_shared<DirectoryFiles>(env, std::move(dir)), limits);
}

Result<OciLayoutReader> OciLayoutReader::Open(std::shared_ptr<const OciLayoutFiles> files,
                                              const ParseLimits& limits) {
  OciLayoutReader r(std::move(files), limits);
  IMGSTORE_RETURN_IF_ERROR(CheckOciLayoutFile(*r.files_));
  const std::string index_path = r.files_->Display("index.json");
  Result<std::string> bytes = r.files_->ReadFile("index.json", limits.max_manifest_bytes);
  if (!bytes.ok()) {
    bytes = NameLimit(bytes.status(), "max_manifest_bytes", limits.max_manifest_bytes);
    if (bytes.status().code() == Code::kNotFound) {
      return Status(Code::kNotFound, "OCI layout " + r.dir_ + " has no index.json");
    }
    return bytes.status().WithContext("OCI layout " + r.dir_);
  }
  Result<ImageIndex> index = ParseImageIndex(*bytes, "", limits);
  if (!index.ok()) return index.status().WithContext(index_path);
  r.index_ = std::move(index).value();
  for (const Descriptor& d : r.index_.manifests) r.images_.push_back({RefOf(d), d});
  return r;
}

Result<OciLayoutImage> OciLayoutReader::FindImage(std::string_view ref) const {
  std::vector<std::string> refs;
  for (const OciLayoutImage& im : images_) {
    refs.push_back(im.ref_name.empty() ? "(no ref) " + im.descriptor.digest.ToString()
                                       : im.ref_name);
  }
  if (ref.empty()) {
    if (images_.size() == 1) return images_[0];
    if (images_.empty()) return Status(Code::kNotFound, "OCI layout " + dir_ + " holds no image");
    return Status(Code::kInvalidArgument, "OCI layout " + dir_ + " holds " +
                                              std::to_string(images_.size()) +
                                              " images: name one of " + Join(refs));
  }
  for (const OciLayoutImage& im : images_) {
    if (im.ref_name == ref) return im;
  }
  return Status(Code::kNotFound, "OCI layout " + dir_ + " has no image \"" + std::string(ref) +
                                     "\"; it has: " + (refs.empty() ? "nothing" : Join(refs)));
}

Result<OciResolvedImage> OciLayoutReader::ResolveImage(std::string_view ref,
                                                       const Platform& platform) const {
  Result<OciLayoutImage> entry = FindImage(ref);
  if (!entry.ok()) return entry.status();
  Descriptor d = entry->descriptor;
  for (int depth = 0; depth <= kMaxIndexNesting; ++depth) {
    Result<std::string> bytes = ReadBlob(d, limits_.max_manifest_bytes);
    if (!bytes.ok()) {
      return NameLimit(bytes.status(), "max_manifest_bytes", limits_.max_manifest_bytes);
    }
    Result<ParsedManifest> parsed = ParseManifest(*bytes, d.media_type, limits_);
    if (!parsed.ok()) return parsed.status().WithContext("manifest " + d.digest.ToString());
    if (const ImageManifest* m = parsed->manifest()) {
      OciResolvedImage out{std::move(entry).value(), d, std::move(bytes).value(), *m};
      return out;
    }
    Result<Descriptor> next = SelectManifest(*parsed->index(), platform);
    if (!next.ok()) return next.status().WithContext("index " + d.digest.ToString());
    d = std::move(next).value();
  }
  return Status(Code::kInvalidArgument, "OCI layout " + dir_ + ": indexes nested deeper than " +
                                            std::to_string(kMaxIndexNesting) + " levels");
}

std::string OciLayoutReader::BlobPath(const Digest& digest) const {
  return dir_ + "/" + BlobRel(digest);
}

Result<OciBlobReader> OciLayoutReader::OpenBlob(const Descriptor& d) const {
  if (d.digest.empty()) return Status(Code::kInvalidArgument, "blob descriptor has no digest");
  if (!d.digest.IsSha256()) {
    return Status(Code::kUnsupported,
                  "blob " + d.digest.ToString() + ": only sha256 blobs can be verified");
  }
  const std::string rel = BlobRel(d.digest);
  const std::string path = files_->Display(rel);
  Result<FileStat> st = files_->Stat(rel);
  if (!st.ok()) {
    if (st.status().code() == Code::kNotFound) {
      return Status(Code::kNotFound,
                    "blob " + d.digest.ToString() + " is missing from OCI layout " + dir_);
    }
    return st.status();
  }
  if (st->type != FileType::kRegular) {
    return Status(Code::kCorruption,
                  "blob " + d.digest.ToString() + " (" + path + ") is not a regular file");
  }
  if (st->size != static_cast<uint64_t>(d.size)) {
    return Status(Code::kCorruption, "blob " + d.digest.ToString() + " (" + path + ") has " +
                                         std::to_string(st->size) + " bytes, its descriptor says " +
                                         std::to_string(d.size));
  }
  Result<std::unique_ptr<SequentialFile>> f = files_->Open(rel);
  if (!f.ok()) return f.status();
  return OciBlobReader(std::move(f).value(), d);
}

Result<std::string> OciLayoutReader::ReadBlob(const Descriptor& d, uint64_t max_bytes) const {
  if (static_cast<uint64_t>(d.size) > max_bytes) {
    return Status(Code::kInvalidArgument,
                  "blob " + d.digest.ToString() + " declares " + std::to_string(d.size) +
                      " bytes, over the limit of " + std::to_string(max_bytes));
  }
  Result<OciBlobReader> r = OpenBlob(d);
  if (!r.ok()) return r.status();
  return CatchAll([&]() -> Result<std::string> {
    std::string out(static_cast<size_t>(d.size), '\0');
    size_t off = 0;
    while (true) {
      std::span<std::byte> rest(reinterpret_cast<std::byte*>(out.data()) + off, out.size() - off);
      if (rest.empty()) {
        // Ask for one more byte to see the end (and so the verification) or an overlong file.
        std::byte extra[1];
        Result<size_t> n = r->Read(extra);
        if (!n.ok()) return n.status();
        if (*n == 0) return out;
        continue;  // unreachable: Read fails on a byte past the declared size
      }
      Result<size_t> n = r->Read(rest);
      if (!n.ok()) return n.status();
      if (*n == 0) return out;  // verified; only reachable with a full buffer
      off += *n;
    }
  });
}

Result<std::string> AddToOciIndex(std::string_view existing, const Descriptor& manifest,
                                  std::string_view ref) {
  if (!ref.empty() && !IsValidOciRefName(ref)) {
    return Status(Code::kInvalidArgument, "\"" + std::string(ref) + "\" is not a valid ref name");
  }
  const ParseLimits limits;
  if (!existing.empty()) {
    Result<ImageIndex> check = ParseImageIndex(existing, "", limits);
    if (!check.ok()) return check.status();
  }
  Descriptor entry = manifest;
  entry.platform.reset();
  entry.urls.clear();
  if (!ref.empty()) entry.annotations[std::string(kOciRefNameAnnotation)] = std::string(ref);
  return CatchAll([&]() -> Result<std::string> {
    Json doc;
    if (existing.empty()) {
      doc = Json::object();
      doc["schemaVersion"] = 2;
      doc["mediaType"] = media_type::kOciIndex;
      doc["manifests"] = Json::array();
    } else {
      Result<Json> parsed = internal::ParseJsonObject(existing, limits.max_nesting_depth);
      if (!parsed.ok()) return parsed.status();
      doc = std::move(parsed).value();
      if (!doc.contains("manifests") || doc["manifests"].is_null()) {
        doc["manifests"] = Json::array();
      }
    }
    Json kept = Json::array();
    for (Json& e : doc["manifests"]) {
      bool drop = false;
      if (e.is_object()) {
        auto a = e.find("annotations");
        if (a != e.end() && a->is_object()) {
          auto r = a->find(std::string(kOciRefNameAnnotation));
          if (r != a->end() && r->is_string()) drop = !ref.empty() && r->get<std::string>() == ref;
        } else if (ref.empty()) {
          // No ref: replace an unnamed entry of the same digest rather than duplicating it.
          auto dg = e.find("digest");
          drop = dg != e.end() && dg->is_string() &&
                 dg->get<std::string>() == manifest.digest.ToString();
        }
      }
      if (!drop) kept.push_back(std::move(e));
    }
    kept.push_back(DescriptorJson(entry));
    doc["manifests"] = std::move(kept);
    return doc.dump();
  });
}

// --- OciLayoutWriter --------------------------------------------------------------------------

namespace {

// Whether `dir` (with no oci-layout file) holds only what a writer killed before writing it can
// leave: nothing, or the empty blobs/sha256/ an older imgstore made first. Its dead temporary
// oci-layout files are swept before this is asked.
Result<bool> OnlyAKilledWritersStart(Env* env, const std::string& dir) {
  Result<std::vector<std::string>> names = env->ListDir(dir);
  if (!names.ok()) return names.status();
  if (names->empty()) return true;
  if (*names != std::vector<std::string>{"blobs"}) return false;
  Result<std::vector<std::string>> algorithms = env->ListDir(dir + "/blobs");
  if (!algorithms.ok()) return false;  // blobs is not a directory
  if (algorithms->empty()) return true;
  if (*algorithms != std::vector<std::string>{"sha256"}) return false;
  Result<std::vector<std::string>> blobs = env->ListDir(dir + "/blobs/sha256");
  return blobs.ok() && blobs->empty();
}

}  // namespace

Result<OciLayoutWriter> OciLayoutWriter::Open(Env* env, std::string dir) {
  OciLayoutWriter w(env, std::move(dir));
  if (w.dir_.empty()) return Status(Code::kInvalidArgument, "OCI layout: empty directory path");
  if (env->FileExists(w.dir_)) {
    Status layout = CheckOciLayoutFile(DirectoryFiles(env, w.dir_));
    if (layout.code() == Code::kNotFound) {
      Result<int> swept = RemoveDeadTempFiles(env, w.dir_, ".oci-layout.tmp-");
      if (!swept.ok()) return swept.status().WithContext("OCI layout " + w.dir_);
      Result<bool> fresh = OnlyAKilledWritersStart(env, w.dir_);
      if (!fresh.ok()) return fresh.status();
      if (!*fresh) {
        return Status(Code::kFailedPrecondition,
                      w.dir_ + " is not empty and is not an OCI layout (no oci-layout file)");
      }
    } else if (!layout.ok()) {
      return layout;
    }
  }
  // oci-layout first: a directory that has it is a layout, and a writer killed before it wrote
  // it leaves nothing that the check above refuses.
  IMGSTORE_RETURN_IF_ERROR(env->CreateDirs(w.dir_));
  if (!env->FileExists(w.dir_ + "/oci-layout")) {
    IMGSTORE_RETURN_IF_ERROR(env->WriteFileAtomically(
        w.dir_ + "/oci-layout",
        "{\"imageLayoutVersion\":\"" + std::string(kOciLayoutVersion) + "\"}"));
  }
  IMGSTORE_RETURN_IF_ERROR(env->CreateDirs(w.dir_ + "/blobs/sha256"));
  // What a writer killed mid-push left (its temporary files are never renamed into place).
  for (const auto& [dir, prefix] :
       {std::pair<std::string, std::string>{w.dir_ + "/blobs/sha256", ".tmp-"},
        {w.dir_, ".index.json.tmp-"},
        {w.dir_, ".oci-layout.tmp-"}}) {
    Result<int> swept = RemoveDeadTempFiles(env, dir, prefix);
    if (!swept.ok()) return swept.status().WithContext("OCI layout " + w.dir_);
  }
  return w;
}

std::string OciLayoutWriter::BlobPath(const Digest& digest) const {
  return dir_ + "/" + BlobRel(digest);
}

bool OciLayoutWriter::HasBlob(const Digest& digest, uint64_t size) {
  Result<FileStat> st = env_->Stat(BlobPath(digest));
  return st.ok() && st->type == FileType::kRegular && st->size == size;
}

Status OciLayoutWriter::PutBlob(const Digest& digest, std::string_view bytes) {
  if (!digest.IsSha256()) {
    return Status(Code::kUnsupported,
                  "blob " + digest.ToString() + ": only sha256 blobs can be written");
  }
  Digest got = Digest::Of(bytes);
  if (got != digest) {
    return Status(Code::kCorruption,
                  "blob " + digest.ToString() + ": its content has digest " + got.ToString());
  }
  if (HasBlob(digest, bytes.size())) return Status::OK();
  const std::string target = BlobPath(digest);
  Result<TempFile> tmp = TempFile::Create(env_, DirName(target), ".tmp-");
  if (!tmp.ok()) return tmp.status();
  IMGSTORE_RETURN_IF_ERROR(tmp->Append(bytes));
  return tmp->Commit(target, CommitMode::kReplace);
}

Status OciLayoutWriter::PutBlobFrom(const Descriptor& d, SequentialFile* src) {
  if (!d.digest.IsSha256()) {
    return Status(Code::kUnsupported,
                  "blob " + d.digest.ToString() + ": only sha256 blobs can be written");
  }
  const uint64_t want = static_cast<uint64_t>(d.size);
  if (HasBlob(d.digest, want)) return Status::OK();
  const std::string target = BlobPath(d.digest);
  Result<TempFile> tmp = TempFile::Create(env_, DirName(target), ".tmp-");
  if (!tmp.ok()) return tmp.status();
  Sha256Hasher hasher;
  std::vector<std::byte> buf(kCopyChunk);
  while (true) {
    Result<size_t> n = src->Read(buf);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    if (hasher.size() + *n > want) {
      return Status(Code::kCorruption, "blob " + d.digest.ToString() +
                                           " is larger than its declared size of " +
                                           std::to_string(want) + " bytes");
    }
    hasher.Update(std::span<const std::byte>(buf).first(*n));
    IMGSTORE_RETURN_IF_ERROR(tmp->Append(std::span<const std::byte>(buf).first(*n)));
  }
  if (hasher.size() != want) {
    return Status(Code::kCorruption, "blob " + d.digest.ToString() +
                                         " is truncated: " + std::to_string(hasher.size()) +
                                         " of " + std::to_string(want) + " bytes");
  }
  Digest got = hasher.Finish();
  if (got != d.digest) {
    return Status(Code::kCorruption,
                  "blob " + d.digest.ToString() + ": its content has digest " + got.ToString());
  }
  return tmp->Commit(target, CommitMode::kReplace);
}

Status OciLayoutWriter::AddImage(const Descriptor& manifest, std::string_view ref) {
  if (!ref.empty() && !IsValidOciRefName(ref)) {
    return Status(Code::kInvalidArgument, "\"" + std::string(ref) + "\" is not a valid ref name");
  }
  if (!HasBlob(manifest.digest, static_cast<uint64_t>(manifest.size))) {
    return Status(Code::kFailedPrecondition, "manifest " + manifest.digest.ToString() +
                                                 " is not in OCI layout " + dir_ +
                                                 " (write its blob first)");
  }
  const std::string index_path = dir_ + "/index.json";
  const ParseLimits limits;
  std::string existing;
  if (env_->FileExists(index_path)) {
    Result<std::string> bytes = env_->ReadFileToString(index_path, limits.max_manifest_bytes);
    if (!bytes.ok()) {
      return NameLimit(bytes.status(), "max_manifest_bytes", limits.max_manifest_bytes);
    }
    existing = std::move(bytes).value();
  }
  Result<std::string> out = AddToOciIndex(existing, manifest, ref);
  if (!out.ok()) return out.status().WithContext(index_path);
  return env_->WriteFileAtomically(index_path, *out);
}

}  // namespace imgstore::images
