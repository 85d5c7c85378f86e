// docker-archive: the source (manifest.json → one image, with a synthesized registry manifest)
// and the destination (an image → a tar that docker load and skopeo read).
#include "transports/docker_archive.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "images/image_config.h"
#include "images/media_types.h"
#include "images/reference.h"
#include "transports/tar_writer.h"
#include "util/digest.h"
#include "util/quote.h"

namespace imgstore::transports {
namespace {

namespace mt = images::media_type;
using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

constexpr std::string_view kManifestJson = "manifest.json";
// Symlinks followed from a path that manifest.json names (old docker save linked a repeated
// layer to its first copy, "../<id>/layer.tar"); a chain longer than this is a loop or abuse.
constexpr int kMaxSymlinkHops = 8;
// Nesting of manifest.json: its structure is 3 deep; unknown fields get some room.
constexpr int kMaxJsonDepth = 32;

// The config, served from memory.
class StringFile final : public SequentialFile {
 public:
  StringFile(std::string path, std::string bytes)
      : SequentialFile(std::move(path)), bytes_(std::move(bytes)) {}
  Result<size_t> Read(std::span<std::byte> buf) override {
    size_t n = std::min(buf.size(), bytes_.size() - pos_);
    std::memcpy(buf.data(), bytes_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  Status Skip(uint64_t n) override {
    pos_ += static_cast<size_t>(std::min<uint64_t>(n, bytes_.size() - pos_));
    return Status::OK();
  }

 private:
  std::string bytes_;
  size_t pos_ = 0;
};

// Hashes every byte read through it into a hasher the caller keeps, so that the digest of a
// stream is known once a consumer (a decompressor, a tar writer) has read it to its end.
class HashingFile final : public SequentialFile {
 public:
  HashingFile(std::unique_ptr<SequentialFile> src, Sha256Hasher* hasher)
      : SequentialFile(src->path()), src_(std::move(src)), hasher_(hasher) {}
  Result<size_t> Read(std::span<std::byte> buf) override {
    Result<size_t> n = src_->Read(buf);
    if (n.ok()) hasher_->Update(buf.first(*n));
    return n;
  }
  Status Skip(uint64_t n) override {
    std::vector<std::byte> scratch(64 * 1024);
    while (n > 0) {
      Result<size_t> got = Read(std::span(scratch).first(std::min<uint64_t>(n, scratch.size())));
      if (!got.ok()) return got.status();
      if (*got == 0) break;
      n -= *got;
    }
    return Status::OK();
  }

 private:
  std::unique_ptr<SequentialFile> src_;
  Sha256Hasher* hasher_;
};

// Reads f to its end, counting the bytes.
Result<uint64_t> Drain(SequentialFile& f) {
  std::vector<std::byte> buf(1 << 20);
  uint64_t total = 0;
  for (;;) {
    Result<size_t> n = f.Read(buf);
    if (!n.ok()) return n.status();
    if (*n == 0) return total;
    total += *n;
  }
}

// --- manifest.json ------------------------------------------------------------------------------

// Refuses what nlohmann would accept but two readers could see differently: duplicate keys, and
// nesting deep enough to matter.
class StrictJson final : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys_.emplace_back();
    return Deeper();
  }
  bool key(string_t& k) override {
    if (!keys_.back().insert(k).second) {
      error_ = "key " + Quote(k) + " appears twice in one object";
      return false;
    }
    return true;
  }
  bool end_object() override {
    keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    keys_.emplace_back();
    return Deeper();
  }
  bool end_array() override {
    keys_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception&) override {
    error_ = "malformed JSON at byte " + std::to_string(position);
    return false;
  }
  const std::string& error() const { return error_; }

 private:
  bool Deeper() {
    if (keys_.size() <= kMaxJsonDepth) return true;
    error_ = "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
    return false;
  }
  std::vector<std::set<std::string>> keys_;
  std::string error_;
};

struct Entry {
  std::string config;
  std::vector<std::string> repo_tags;
  std::vector<std::string> layers;
};

Status JsonError(std::string_view field, std::string_view problem) {
  return Status(Code::kInvalidArgument, std::string(kManifestJson) + ": " + std::string(field) +
                                            ": " + std::string(problem));
}

Status ReadStringList(const Json& obj, const char* key, const std::string& at, bool required,
                      std::vector<std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return required ? JsonError(at + "." + key, "missing") : Status::OK();
  }
  if (!it->is_array()) return JsonError(at + "." + key, "must be an array of strings");
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& v = (*it)[i];
    if (!v.is_string()) {
      return JsonError(at + "." + key + "[" + std::to_string(i) + "]", "must be a string");
    }
    out->push_back(v.get<std::string>());
  }
  return Status::OK();
}

Result<std::vector<Entry>> ParseManifestJson(std::string_view bytes) {
  try {
    StrictJson checker;
    if (!Json::sax_parse(bytes.begin(), bytes.end(), &checker)) {
      return JsonError("", checker.error().empty() ? "malformed JSON" : checker.error());
    }
    Json doc = Json::parse(bytes.begin(), bytes.end());
    if (!doc.is_array()) return JsonError("", "must be a JSON array of images");
    std::vector<Entry> entries;
    for (size_t i = 0; i < doc.size(); ++i) {
      const Json& e = doc[i];
      const std::string at = "[" + std::to_string(i) + "]";
      if (!e.is_object()) return JsonError(at, "must be an object");
      Entry entry;
      auto config = e.find("Config");
      if (config == e.end() || !config->is_string()) {
        return JsonError(at + ".Config", "must be a string naming the config file");
      }
      entry.config = config->get<std::string>();
      IMGSTORE_RETURN_IF_ERROR(ReadStringList(e, "RepoTags", at, false, &entry.repo_tags));
      IMGSTORE_RETURN_IF_ERROR(ReadStringList(e, "Layers", at, true, &entry.layers));
      entries.push_back(std::move(entry));
    }
    return entries;
  } catch (const std::bad_alloc&) {
    return Status(Code::kInternal, "out of memory parsing manifest.json");
  } catch (const std::exception& e) {
    return JsonError("", std::string("unexpected JSON error: ") + e.what());
  }
}

// A path that manifest.json names, as a clean archive path ("./a//b" → "a/b"). Absolute paths
// and ".." components are refused: they can only mean an attempt to read outside the archive.
Result<std::string> CleanPath(std::string_view path, std::string_view field) {
  auto bad = [&](std::string_view why) {
    return JsonError(field, Quote(path) + " " + std::string(why));
  };
  if (path.empty()) return bad("is empty");
  if (path.front() == '/') return bad("is an absolute path");
  if (path.find('\0') != std::string_view::npos) return bad("holds a NUL byte");
  std::string out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part == "..") return bad("has a \"..\" component");
    if (!part.empty() && part != ".") {
      if (!out.empty()) out += '/';
      out += part;
    }
    start = end + 1;
  }
  if (out.empty()) return bad("names no file");
  return out;
}

// A symlink target resolved lexically against the directory of the link ("." for the top),
// or nullopt if it is absolute or climbs above the top of the archive.
std::optional<std::string> JoinInside(const std::string& dir, std::string_view target) {
  if (target.empty() || target.front() == '/') return std::nullopt;
  std::vector<std::string> parts;
  auto add = [&](std::string_view p) {
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = std::min(p.find('/', start), p.size());
      std::string_view part = p.substr(start, end - start);
      if (part == "..") {
        if (parts.empty()) return false;
        parts.pop_back();
      } else if (!part.empty() && part != ".") {
        parts.emplace_back(part);
      }
      start = end + 1;
    }
    return true;
  };
  if (!add(dir == "." ? "" : dir) || !add(target) || parts.empty()) return std::nullopt;
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : "/") + p;
  return out;
}

// The regular member that a clean path names, following symlinks inside the archive.
Result<const TarMember*> ResolveMember(const TarReader& tar, std::string path,
                                       std::string_view field) {
  const std::string original = path;
  for (int hop = 0; hop <= kMaxSymlinkHops; ++hop) {
    if (const TarMember* m = tar.Find(path)) return m;
    auto link = std::find_if(tar.members().begin(), tar.members().end(),
                             [&](const TarMember& m) { return m.name == path && m.type == '2'; });
    if (link == tar.members().end()) {
      return JsonError(field, Quote(original) + " is not a file in the archive");
    }
    // A relative target resolves against the link's directory, and must stay in the archive.
    std::optional<std::string> next = JoinInside(DirName(path), link->linkname);
    if (!next) {
      return JsonError(field, Quote(original) + " is a symlink that leads out of the archive");
    }
    path = *next;
  }
  return JsonError(field, Quote(original) + " is a chain of more than " +
                              std::to_string(kMaxSymlinkHops) + " symlinks");
}

// --- source -------------------------------------------------------------------------------------

struct Layer {
  const TarMember* member;
  Digest digest;   // of the member's bytes as stored
  Digest diff_id;  // of its uncompressed bytes, checked against the config
  layers::Compression compression;
};

class DockerArchiveSource final : public images::ImageSource {
 public:
  DockerArchiveSource(std::string description, TarReader tar)
      : description_(std::move(description)), tar_(std::move(tar)) {}

  Status Load(std::string_view ref, const DockerArchiveLimits& limits);

  std::string Describe() const override { return description_; }
  Result<images::RawManifest> GetManifest() override { return manifest_; }
  Result<images::RawManifest> GetManifest(const images::Descriptor& d) override {
    return Status(Code::kNotFound, description_ + ": has no manifest " + d.digest.ToString() +
                                       " (a docker archive holds no index)");
  }
  Result<std::unique_ptr<SequentialFile>> GetBlob(const images::Descriptor& d) override {
    if (d.digest == config_digest_) {
      return std::unique_ptr<SequentialFile>(
          std::make_unique<StringFile>(tar_.path() + "[" + config_name_ + "]", config_));
    }
    for (const Layer& l : layers_) {
      if (l.digest == d.digest) return tar_.Open(*l.member);
    }
    return Status(Code::kNotFound, description_ + ": has no blob " + d.digest.ToString());
  }
  std::vector<std::string> Names() const override { return names_; }

 private:
  Result<size_t> SelectEntry(const std::vector<Entry>& entries, std::string_view ref) const;
  Status HashLayer(const TarMember& m, const std::string& field, const Digest& diff_id,
                   const DockerArchiveLimits& limits, Layer* out) const;

  std::string description_;
  TarReader tar_;
  std::string config_;
  std::string config_name_;
  Digest config_digest_;
  std::vector<Layer> layers_;
  std::vector<std::string> names_;
  images::RawManifest manifest_;
};

std::string ListEntries(const std::vector<Entry>& entries) {
  std::string out;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0) out += ", ";
    out += "@" + std::to_string(i) + " (";
    if (entries[i].repo_tags.empty()) out += "untagged";
    for (size_t t = 0; t < entries[i].repo_tags.size(); ++t) {
      if (t > 0) out += " ";
      out += Quote(entries[i].repo_tags[t], 80);
    }
    out += ")";
  }
  return out;
}

Result<size_t> DockerArchiveSource::SelectEntry(const std::vector<Entry>& entries,
                                                std::string_view ref) const {
  if (entries.empty()) {
    return Status(Code::kInvalidArgument, "manifest.json lists no images");
  }
  if (ref.empty()) {
    if (entries.size() == 1) return size_t{0};
    return Status(Code::kInvalidArgument,
                  "the archive holds " + std::to_string(entries.size()) +
                      " images; choose one with :NAME[:TAG] or :@N: " + ListEntries(entries));
  }
  if (ref.front() == '@') {
    std::string_view digits = ref.substr(1);
    size_t index = 0;
    bool ok = !digits.empty() && digits.size() <= 9;
    for (char ch : digits) {
      if (ch < '0' || ch > '9') ok = false;
      index = index * 10 + static_cast<size_t>(ch - '0');
    }
    if (!ok) {
      return Status(Code::kInvalidArgument,
                    "invalid image index " + Quote(ref) + ": expected @N with N a number");
    }
    if (index >= entries.size()) {
      return Status(Code::kNotFound, "no image @" + std::to_string(index) + ": the archive holds " +
                                         std::to_string(entries.size()) + " (@0 to @" +
                                         std::to_string(entries.size() - 1) + ")");
    }
    return index;
  }
  Result<images::Reference> want = images::ParseReference(ref);
  if (!want.ok()) return want.status();
  if (want->digest) {
    return Status(Code::kInvalidArgument, "a docker-archive reference cannot hold a digest: " +
                                              Quote(ref) + " (use NAME:TAG or @N)");
  }
  const std::string wanted = want->WithDefaultTag().String();
  std::vector<size_t> found;
  for (size_t i = 0; i < entries.size(); ++i) {
    for (const std::string& tag : entries[i].repo_tags) {
      Result<images::Reference> r = images::ParseReference(tag);
      if (r.ok() && r->WithDefaultTag().String() == wanted) {
        found.push_back(i);
        break;
      }
    }
  }
  if (found.empty()) {
    return Status(Code::kNotFound, "no image tagged " + Quote(wanted) +
                                       " in the archive; it holds " + ListEntries(entries));
  }
  if (found.size() > 1) {
    return Status(Code::kInvalidArgument,
                  "the tag " + Quote(wanted) + " names " + std::to_string(found.size()) +
                      " images of the archive; choose one with :@N: " + ListEntries(entries));
  }
  return found[0];
}

Status DockerArchiveSource::HashLayer(const TarMember& m, const std::string& field,
                                      const Digest& diff_id, const DockerArchiveLimits& limits,
                                      Layer* out) const {
  const std::string where = field + " " + Quote(m.name);
  std::byte head[8] = {};
  {
    Result<std::unique_ptr<SequentialFile>> f = tar_.Open(m);
    if (!f.ok()) return f.status();
    Result<size_t> n = (*f)->Read(head);
    if (!n.ok()) return n.status();
    std::span<const std::byte> got(head, *n);
    if (std::string_view other = layers::SniffUnsupportedCompression(got); !other.empty()) {
      return Status(Code::kUnsupported, where + " is " + std::string(other) +
                                            "-compressed, which imgstore does not decompress");
    }
    out->compression = layers::SniffCompression(got);
  }
  Result<std::unique_ptr<SequentialFile>> f = tar_.Open(m);
  if (!f.ok()) return f.status();
  Sha256Hasher stored;
  auto hashing = std::make_unique<HashingFile>(std::move(*f), &stored);
  Digest plain;
  if (out->compression == layers::Compression::kNone) {
    Result<uint64_t> n = Drain(*hashing);
    if (!n.ok()) return n.status();
    plain = stored.Finish();
    out->digest = plain;
  } else {
    Result<std::unique_ptr<SequentialFile>> d =
        layers::OpenDecompressed(std::move(hashing), out->compression, limits.decompress);
    if (!d.ok()) return d.status();
    Sha256Hasher uncompressed;
    HashingFile outer(std::move(*d), &uncompressed);
    Result<uint64_t> n = Drain(outer);
    if (!n.ok()) return n.status();
    plain = uncompressed.Finish();
    out->digest = stored.Finish();
  }
  if (plain != diff_id) {
    return Status(Code::kCorruption, where + " does not match the config: its diffID is " +
                                         plain.ToString() + ", the config says " +
                                         diff_id.ToString());
  }
  out->member = &m;
  out->diff_id = plain;
  return Status::OK();
}

Status DockerArchiveSource::Load(std::string_view ref, const DockerArchiveLimits& limits) {
  const TarMember* mj = tar_.Find(kManifestJson);
  if (mj == nullptr) {
    return Status(Code::kInvalidArgument,
                  "no manifest.json in the archive: not a docker save archive (archives older "
                  "than docker 1.10, with only a repositories file, are not supported)");
  }
  Result<std::string> mj_bytes = tar_.ReadAll(*mj, limits.max_manifest_json_bytes);
  if (!mj_bytes.ok()) {
    return mj_bytes.status().WithContext("manifest.json is over the limit max_manifest_json_bytes");
  }
  Result<std::vector<Entry>> entries = ParseManifestJson(*mj_bytes);
  if (!entries.ok()) return entries.status();
  Result<size_t> index = SelectEntry(*entries, ref);
  if (!index.ok()) return index.status();
  const Entry& entry = (*entries)[*index];
  const std::string at = "[" + std::to_string(*index) + "]";

  // The config: its digest is the image ID, kept as it is.
  Result<std::string> config_path = CleanPath(entry.config, at + ".Config");
  if (!config_path.ok()) return config_path.status();
  Result<const TarMember*> config_member = ResolveMember(tar_, *config_path, at + ".Config");
  if (!config_member.ok()) return config_member.status();
  Result<std::string> config = tar_.ReadAll(**config_member, limits.parse.max_config_bytes);
  if (!config.ok()) {
    return images::NameLimit(config.status(), "max_config_bytes", limits.parse.max_config_bytes)
        .WithContext("config " + Quote(entry.config));
  }
  Result<images::ImageConfig> parsed = images::ParseImageConfig(*config, limits.parse);
  if (!parsed.ok()) return parsed.status().WithContext("config " + Quote(entry.config));
  if (parsed->diff_ids.size() != entry.layers.size()) {
    return Status(Code::kInvalidArgument, "manifest.json" + at + " lists " +
                                              std::to_string(entry.layers.size()) +
                                              " layers but its config has " +
                                              std::to_string(parsed->diff_ids.size()) + " diffIDs");
  }
  for (const Digest& d : parsed->diff_ids) {
    if (!d.IsSha256()) {
      return Status(Code::kUnsupported, "config diffID " + d.ToString() + " is not sha256");
    }
  }
  config_ = std::move(*config);
  config_name_ = (*config_member)->name;
  config_digest_ = Digest::Of(config_);

  // The layers: each distinct member is read once, here.
  std::map<std::string, Layer> by_member;
  bool any_zstd = false;
  for (size_t i = 0; i < entry.layers.size(); ++i) {
    const std::string field = at + ".Layers[" + std::to_string(i) + "]";
    Result<std::string> p = CleanPath(entry.layers[i], field);
    if (!p.ok()) return p.status();
    Result<const TarMember*> m = ResolveMember(tar_, *p, field);
    if (!m.ok()) return m.status();
    auto it = by_member.find((*m)->name);
    if (it == by_member.end()) {
      Layer layer{};
      IMGSTORE_RETURN_IF_ERROR(HashLayer(**m, field, parsed->diff_ids[i], limits, &layer));
      it = by_member.emplace((*m)->name, layer).first;
    } else if (it->second.diff_id != parsed->diff_ids[i]) {
      return Status(Code::kCorruption,
                    field + " " + Quote((*m)->name) + " is used for two different diffIDs");
    }
    any_zstd = any_zstd || it->second.compression == layers::Compression::kZstd;
    layers_.push_back(it->second);
  }

  // The synthesized manifest (docs/docker-archive.md): Docker v2s2, the format of docker's own
  // images and of what containers/image synthesizes here, unless a zstd member needs OCI's types.
  const bool oci = any_zstd;
  OrderedJson m;
  m["schemaVersion"] = 2;
  m["mediaType"] = oci ? mt::kOciManifest : mt::kDockerManifest;
  m["config"] = OrderedJson{{"mediaType", oci ? mt::kOciConfig : mt::kDockerConfig},
                            {"size", config_.size()},
                            {"digest", config_digest_.ToString()}};
  OrderedJson layer_list = OrderedJson::array();
  for (const Layer& l : layers_) {
    std::string_view type;
    switch (l.compression) {
      case layers::Compression::kNone:
        type = oci ? mt::kOciLayerTar : mt::kDockerLayerTar;
        break;
      case layers::Compression::kGzip:
        type = oci ? mt::kOciLayerTarGzip : mt::kDockerLayerTarGzip;
        break;
      case layers::Compression::kZstd:
        type = mt::kOciLayerTarZstd;
        break;
    }
    layer_list.push_back(OrderedJson{
        {"mediaType", type}, {"size", l.member->size}, {"digest", l.digest.ToString()}});
  }
  m["layers"] = std::move(layer_list);
  manifest_.bytes = m.dump();
  manifest_.media_type = oci ? mt::kOciManifest : mt::kDockerManifest;
  names_ = entry.repo_tags;
  return Status::OK();
}

// --- destination --------------------------------------------------------------------------------

class DockerArchiveDestination final : public images::ImageDestination {
 public:
  DockerArchiveDestination(Env* env, std::string path, std::optional<std::string> tag,
                           DockerArchiveLimits limits)
      : env_(env), path_(std::move(path)), tag_(std::move(tag)), limits_(std::move(limits)) {}

  std::string Describe() const override {
    return "docker-archive:" + path_ + (tag_ ? ":" + *tag_ : "");
  }

  Status PutImage(const images::ImageToWrite& image) override {
    Status st = Put(image);
    return st.ok() ? st : st.WithContext(Describe());
  }

 private:
  Status Put(const images::ImageToWrite& image);
  // The layer uncompressed, as the tar member `name`, checked against its diffID.
  Status PutLayer(TarWriter& tar, const images::ImageToWrite& image, size_t i,
                  const std::string& name);

  Env* env_;
  std::string path_;
  std::optional<std::string> tag_;  // familiar form
  DockerArchiveLimits limits_;
};

Status DockerArchiveDestination::PutLayer(TarWriter& tar, const images::ImageToWrite& image,
                                          size_t i, const std::string& name) {
  const images::Descriptor& desc = image.parsed.layers[i];
  const Digest& diff_id = image.diff_ids[i];
  const std::string what = "layer " + std::to_string(i) + " (" + desc.digest.ToString() + ")";
  Result<layers::Compression> c = layers::CompressionOfMediaType(desc.media_type);
  if (!c.ok()) return c.status().WithContext(what);
  auto open = [&]() -> Result<std::unique_ptr<SequentialFile>> {
    Result<std::unique_ptr<SequentialFile>> blob = image.open_blob(desc);
    if (!blob.ok()) return blob.status();
    return layers::OpenDecompressed(std::move(*blob), *c, limits_.decompress);
  };
  auto mismatch = [&](const Digest& got) {
    return Status(Code::kCorruption, what + " decompresses to diffID " + got.ToString() +
                                         ", but the config says " + diff_id.ToString());
  };
  // A tar header states the size first, and only an uncompressed layer's size is known before
  // it is read: a compressed one is decompressed once to learn its size (and to refuse a wrong
  // diffID before anything large is written), then again into the archive.
  uint64_t size = static_cast<uint64_t>(desc.size);
  if (*c != layers::Compression::kNone) {
    Result<std::unique_ptr<SequentialFile>> f = open();
    if (!f.ok()) return f.status().WithContext(what);
    Sha256Hasher h;
    HashingFile hashing(std::move(*f), &h);
    Result<uint64_t> n = Drain(hashing);
    if (!n.ok()) return n.status().WithContext(what);
    Digest got = h.Finish();
    if (got != diff_id) return mismatch(got);
    size = *n;
  }
  Result<std::unique_ptr<SequentialFile>> f = open();
  if (!f.ok()) return f.status().WithContext(what);
  Sha256Hasher h;
  HashingFile hashing(std::move(*f), &h);
  Status st = tar.AddFile(name, size, hashing);
  if (!st.ok()) return st.WithContext(what);
  Digest got = h.Finish();
  if (got != diff_id) return mismatch(got);
  return Status::OK();
}

Status DockerArchiveDestination::Put(const images::ImageToWrite& image) {
  if (image.diff_ids.size() != image.parsed.layers.size()) {
    return Status(Code::kInvalidArgument, "the manifest has " +
                                              std::to_string(image.parsed.layers.size()) +
                                              " layers but the config has " +
                                              std::to_string(image.diff_ids.size()) + " diffIDs");
  }
  const Digest config_digest = Digest::Of(image.config);
  if (config_digest != image.parsed.config.digest) {
    return Status(Code::kCorruption, "the config bytes hash to " + config_digest.ToString() +
                                         ", not to the manifest's " +
                                         image.parsed.config.digest.ToString());
  }
  for (const Digest& d : image.diff_ids) {
    if (!d.IsSha256()) {
      return Status(Code::kUnsupported, "diffID " + d.ToString() + " is not sha256");
    }
  }
  // RepoTags: docker load wants familiar, tagged names.
  std::vector<std::string> repo_tags;
  if (tag_) {
    repo_tags.push_back(*tag_);
  } else {
    for (const std::string& name : image.names) {
      Result<images::Reference> r = images::ParseReference(name);
      if (r.ok() && r->tag && !r->digest) repo_tags.push_back(r->Familiar());
    }
  }

  Result<TarWriter> tar = TarWriter::Create(env_, path_);
  if (!tar.ok()) return tar.status();
  // Layers first, manifest.json last, as docker save and skopeo write them.
  std::vector<std::string> layer_names;
  std::set<std::string> written;
  for (size_t i = 0; i < image.parsed.layers.size(); ++i) {
    std::string name = std::string(image.diff_ids[i].hex()) + ".tar";
    if (written.insert(name).second) IMGSTORE_RETURN_IF_ERROR(PutLayer(*tar, image, i, name));
    layer_names.push_back(std::move(name));
  }
  const std::string config_name = std::string(config_digest.hex()) + ".json";
  IMGSTORE_RETURN_IF_ERROR(tar->AddFile(config_name, image.config));
  OrderedJson entry;
  entry["Config"] = config_name;
  entry["RepoTags"] = repo_tags;
  entry["Layers"] = layer_names;
  IMGSTORE_RETURN_IF_ERROR(tar->AddFile(kManifestJson, OrderedJson::array({entry}).dump()));
  return tar->Commit();
}

}  // namespace

Result<DockerArchiveSpec> ParseDockerArchiveSpec(std::string_view spec) {
  size_t colon = spec.find(':');
  DockerArchiveSpec out;
  out.path = std::string(spec.substr(0, colon));
  if (colon != std::string_view::npos) out.ref = std::string(spec.substr(colon + 1));
  if (out.path.empty()) {
    return Status(Code::kInvalidArgument,
                  "docker-archive: needs a file: docker-archive:FILE[:NAME[:TAG]|:@N]");
  }
  return out;
}

Result<std::unique_ptr<images::ImageSource>> OpenDockerArchiveSource(
    Env* env, const std::string& path, std::string_view ref, const DockerArchiveLimits& limits) {
  const std::string description =
      "docker-archive:" + path + (ref.empty() ? "" : ":" + std::string(ref));
  Result<TarReader> tar = TarReader::Open(env, path, limits.tar);
  if (!tar.ok()) return tar.status().WithContext(description);
  auto source = std::make_unique<DockerArchiveSource>(description, std::move(*tar));
  Status st = source->Load(ref, limits);
  if (!st.ok()) return st.WithContext(description);
  return std::unique_ptr<images::ImageSource>(std::move(source));
}

Result<std::unique_ptr<images::ImageDestination>> OpenDockerArchiveDestination(
    Env* env, const std::string& path, std::string_view ref, const DockerArchiveLimits& limits) {
  std::optional<std::string> tag;
  if (!ref.empty()) {
    Result<images::Reference> r = images::ParseReference(ref);
    if (!r.ok()) return r.status().WithContext("docker-archive:" + path);
    if (r->digest) {
      return Status(Code::kInvalidArgument, "docker-archive:" + path +
                                                ": a docker-archive reference cannot hold a "
                                                "digest: " +
                                                Quote(ref) + " (use NAME:TAG)");
    }
    tag = r->WithDefaultTag().Familiar();
  }
  return std::unique_ptr<images::ImageDestination>(
      std::make_unique<DockerArchiveDestination>(env, path, std::move(tag), limits));
}

}  // namespace imgstore::transports
