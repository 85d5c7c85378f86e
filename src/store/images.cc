// Image records of a Store: AddImage (parse, verify that every blob is present, compute chainIDs,
// record manifest, image, layers and names in one write transaction), ListImages and
// InspectImage (read snapshots), and the chainID rule.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "images/image_config.h"
#include "images/manifest.h"
#include "store/images_internal.h"
#include "store/store.h"

namespace imgstore::store {

std::vector<Digest> ChainIds(std::span<const Digest> diff_ids) {
  std::vector<Digest> out;
  out.reserve(diff_ids.size());
  for (const Digest& d : diff_ids) {
    out.push_back(out.empty() ? d : Digest::Of(out.back().ToString() + " " + d.ToString()));
  }
  return out;
}

namespace {

// A blob the image needs, and the size its descriptor gives.
struct Needed {
  std::string what;  // "config", "layer 2", "manifest"
  Digest digest;
  uint64_t size;
};

// Every needed blob is recorded with the size its descriptor says.
Status CheckBlobs(Transaction& txn, const std::vector<Needed>& needed) {
  for (const Needed& n : needed) {
    Result<Statement> st = txn.Prepare("SELECT size FROM blobs WHERE digest = ?");
    if (!st.ok()) return st.status();
    st->Bind(1, n.digest.ToString());
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) {
      return Status(Code::kNotFound, "add image: " + n.what + " blob " + n.digest.ToString() +
                                         " is not in the store");
    }
    auto size = static_cast<uint64_t>(st->ColumnInt64(0));
    if (size != n.size) {
      return Status(Code::kInvalidArgument,
                    "add image: " + n.what + " blob " + n.digest.ToString() +
                        ": the manifest says " + std::to_string(n.size) +
                        " bytes, the stored blob has " + std::to_string(size));
    }
  }
  return Status::OK();
}

Status RequireSha256(const Digest& d, const std::string& what) {
  if (d.IsSha256()) return Status::OK();
  return Status(Code::kUnsupported,
                "add image: " + what + " digest " + d.ToString() + " is not sha256");
}

Result<Digest> ParseDigestColumn(const Statement& st, int col) {
  Result<Digest> d = Digest::Parse(st.ColumnText(col));
  if (!d.ok()) {
    return Status(Code::kCorruption, "bad digest \"" + st.ColumnText(col) + "\" in the database");
  }
  return d;
}

}  // namespace

namespace internal {

// The columns that ReadSummaryRow reads, in order; `i` is the images table.
const std::string_view kSummaryColumns =
    "i.id, i.manifest_digest, i.created, i.added, i.size, i.os, i.architecture, i.variant";

// An ImageSummary without names from the kSummaryColumns of the current row.
Result<ImageSummary> ReadSummaryRow(const Statement& st) {
  ImageSummary s;
  Result<Digest> id = ParseDigestColumn(st, 0);
  if (!id.ok()) return id.status();
  Result<Digest> m = ParseDigestColumn(st, 1);
  if (!m.ok()) return m.status();
  s.id = std::move(*id);
  s.manifest_digest = std::move(*m);
  if (!st.ColumnIsNull(2)) {
    s.created_unix_ns = st.ColumnInt64(2);
    s.created = FormatRfc3339(s.created_unix_ns);
  }
  s.added_unix_ns = st.ColumnInt64(3);
  s.size = static_cast<uint64_t>(st.ColumnInt64(4));
  s.os = st.ColumnText(5);
  s.architecture = st.ColumnText(6);
  s.variant = st.ColumnText(7);
  return s;
}

Result<ImageSummary> LoadSummary(Transaction& txn, const Digest& id) {
  Result<Statement> st =
      txn.Prepare("SELECT " + std::string(kSummaryColumns) + " FROM images i WHERE i.id = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, id.ToString());
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status(Code::kNotFound, "image not known: " + id.ToString());
  Result<ImageSummary> s = ReadSummaryRow(*st);
  if (!s.ok()) return s.status();
  Result<Statement> names =
      txn.Prepare("SELECT reference FROM names WHERE image_id = ? ORDER BY reference");
  if (!names.ok()) return names.status();
  names->Bind(1, id.ToString());
  while (true) {
    Result<bool> r = names->Step();
    if (!r.ok()) return r.status();
    if (!*r) break;
    s->names.push_back(names->ColumnText(0));
  }
  return s;
}

}  // namespace internal

Result<AddImageResult> Store::AddImage(std::string_view manifest_bytes,
                                       std::string_view manifest_media_type,
                                       std::string_view config_bytes,
                                       std::span<const std::string> names) {
  // 1. Everything that can be checked without the store: nothing is written when it fails.
  Result<images::ImageManifest> manifest =
      images::ParseImageManifest(manifest_bytes, manifest_media_type);
  if (!manifest.ok()) return manifest.status().WithContext("add image");
  if (!manifest->IsImage()) {
    return Status(Code::kUnsupported, "add image: the manifest's config (" +
                                          manifest->config.media_type + ") is not an image config");
  }
  IMGSTORE_RETURN_IF_ERROR(RequireSha256(manifest->config.digest, "config"));
  for (size_t i = 0; i < manifest->layers.size(); ++i) {
    IMGSTORE_RETURN_IF_ERROR(
        RequireSha256(manifest->layers[i].digest, "layer " + std::to_string(i)));
  }
  Digest config_digest = Digest::Of(config_bytes);
  if (config_digest != manifest->config.digest ||
      config_bytes.size() != static_cast<uint64_t>(manifest->config.size)) {
    return Status(Code::kInvalidArgument,
                  "add image: the config given (" + config_digest.ToString() + ", " +
                      std::to_string(config_bytes.size()) + " bytes) is not the manifest's (" +
                      manifest->config.digest.ToString() + ", " +
                      std::to_string(manifest->config.size) + " bytes)");
  }
  Result<images::ImageConfig> config = images::ParseImageConfig(config_bytes);
  if (!config.ok()) return config.status().WithContext("add image: config");
  IMGSTORE_RETURN_IF_ERROR(
      images::CheckConfigMatchesManifest(*manifest, *config).WithContext("add image"));
  std::vector<images::Reference> refs;
  for (const std::string& n : names) {
    Result<images::Reference> ref = internal::ParseName(n);
    if (!ref.ok()) return ref.status().WithContext("add image");
    refs.push_back(std::move(*ref));
  }
  std::vector<Digest> chain = ChainIds(config->diff_ids);
  std::optional<int64_t> created;
  if (!config->created.empty()) {
    Result<int64_t> t = internal::ParseRfc3339(config->created);
    if (t.ok()) created = *t;  // an unreadable time is shown as unknown, not refused
  }
  const Digest manifest_digest = Digest::Of(manifest_bytes);
  std::vector<Needed> needed;
  needed.push_back({"config", config_digest, config_bytes.size()});
  uint64_t size = config_bytes.size() + manifest_bytes.size();
  for (size_t i = 0; i < manifest->layers.size(); ++i) {
    const images::Descriptor& l = manifest->layers[i];
    needed.push_back({"layer " + std::to_string(i), l.digest, static_cast<uint64_t>(l.size)});
    size += static_cast<uint64_t>(l.size);
  }

  // 2. Fail early, without writing, when a blob is missing.
  {
    Result<ReadTransaction> txn = db_->BeginRead();
    if (!txn.ok()) return txn.status();
    IMGSTORE_RETURN_IF_ERROR(CheckBlobs(*txn, needed));
  }

  // 3. The manifest bytes are a blob too (ingest does its own locking and transaction).
  IngestOptions opts;
  opts.expected_size = manifest_bytes.size();
  opts.media_type = manifest->media_type;
  opts.operation = "add image " + config_digest.ToString();
  Result<IngestResult> ingested = IngestBlob(manifest_digest, opts, manifest_bytes);
  if (!ingested.ok()) return ingested.status().WithContext("add image: manifest");
  needed.push_back({"manifest", manifest_digest, manifest_bytes.size()});

  // 4. One short write transaction. Blobs are checked again under it: gc may have removed one
  // since step 2 (then the manifest blob is left for gc, and nothing else is changed).
  const int64_t now = internal::NowUnixNs();
  Result<WriteTransaction> txn = db_->BeginWrite();
  if (!txn.ok()) return txn.status();
  IMGSTORE_RETURN_IF_ERROR(CheckBlobs(*txn, needed));
  AddImageResult result;
  result.id = config_digest;
  result.manifest_digest = manifest_digest;
  {
    Result<Statement> st = txn->Prepare("SELECT manifest_digest FROM images WHERE id = ?");
    if (!st.ok()) return st.status();
    st->Bind(1, config_digest.ToString());
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (*row) {
      Result<Digest> m = ParseDigestColumn(*st, 0);
      if (!m.ok()) return m.status();
      result.manifest_digest = std::move(*m);
    }
    result.created = !*row;
  }
  if (result.created) {
    Result<Statement> st = txn->Prepare(
        "INSERT OR IGNORE INTO manifests (digest, media_type, kind, config_digest, created) "
        "VALUES (?, ?, 'manifest', ?, ?)");
    if (!st.ok()) return st.status();
    st->Bind(1, manifest_digest.ToString())
        .Bind(2, manifest->media_type)
        .Bind(3, config_digest.ToString())
        .Bind(4, now);
    IMGSTORE_RETURN_IF_ERROR(st->Run());

    st = txn->Prepare(
        "INSERT INTO images (id, manifest_digest, index_digest, created, added, size, os, "
        "architecture, variant) VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?)");
    if (!st.ok()) return st.status();
    st->Bind(1, config_digest.ToString())
        .Bind(2, manifest_digest.ToString())
        .Bind(3, created)
        .Bind(4, now)
        .Bind(5, static_cast<int64_t>(size))
        .Bind(6, config->os)
        .Bind(7, config->architecture)
        .Bind(8, config->variant);
    IMGSTORE_RETURN_IF_ERROR(st->Run());

    for (size_t i = 0; i < manifest->layers.size(); ++i) {
      const images::Descriptor& l = manifest->layers[i];
      Result<Statement> ls = txn->Prepare(
          "INSERT OR IGNORE INTO layers (chain_id, diff_id, parent_chain_id, created) "
          "VALUES (?, ?, ?, ?)");
      if (!ls.ok()) return ls.status();
      ls->Bind(1, chain[i].ToString()).Bind(2, config->diff_ids[i].ToString());
      if (i == 0) {
        ls->BindNull(3);
      } else {
        ls->Bind(3, chain[i - 1].ToString());
      }
      ls->Bind(4, now);
      IMGSTORE_RETURN_IF_ERROR(ls->Run());

      Result<Statement> il = txn->Prepare(
          "INSERT INTO image_layers (image_id, position, blob_digest, media_type, size, chain_id) "
          "VALUES (?, ?, ?, ?, ?, ?)");
      if (!il.ok()) return il.status();
      il->Bind(1, config_digest.ToString())
          .Bind(2, static_cast<int64_t>(i))
          .Bind(3, l.digest.ToString())
          .Bind(4, l.media_type)
          .Bind(5, l.size)
          .Bind(6, chain[i].ToString());
      IMGSTORE_RETURN_IF_ERROR(il->Run());
    }
  }
  for (const images::Reference& ref : refs) {
    IMGSTORE_RETURN_IF_ERROR(internal::PutName(*txn, ref, config_digest, now));
  }
  IMGSTORE_RETURN_IF_ERROR(txn->Commit());
  return result;
}

Result<std::vector<ImageSummary>> Store::ListImages(std::string_view filter) {
  std::optional<images::Reference> want;
  if (!filter.empty()) {
    Result<images::Reference> ref = images::ParseReference(filter);
    if (!ref.ok()) return ref.status().WithContext("list");
    want = std::move(*ref);
  }
  // One query (the shape schema_test checks: no temporary B-tree, names by index): each
  // image's rows are consecutive, one per name (one with a NULL name when it has none).
  Result<ReadTransaction> txn = db_->BeginRead();
  if (!txn.ok()) return txn.status();
  Result<Statement> st =
      txn->Prepare("SELECT " + std::string(internal::kSummaryColumns) +
                   ", n.reference FROM images i LEFT JOIN names n ON n.image_id = i.id "
                   "ORDER BY i.created DESC, i.id");
  if (!st.ok()) return st.status();
  std::vector<ImageSummary> all;
  while (true) {
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (all.empty() || all.back().id.ToString() != st->ColumnText(0)) {
      Result<ImageSummary> s = internal::ReadSummaryRow(*st);
      if (!s.ok()) return s.status();
      all.push_back(std::move(*s));
    }
    if (!st->ColumnIsNull(8)) all.back().names.push_back(st->ColumnText(8));
  }
  std::vector<ImageSummary> out;
  for (ImageSummary& s : all) {
    std::sort(s.names.begin(), s.names.end());
    if (want) {
      bool match = false;
      if (want->digest) {
        match = s.manifest_digest == *want->digest;
      } else {
        for (const std::string& n : s.names) {
          Result<images::Reference> r = images::ParseReference(n);
          if (!r.ok()) continue;
          match = match || (want->tag ? r->String() == want->String()
                                      : r->Repository() == want->Repository());
        }
      }
      if (!match) continue;
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<ImageDetails> Store::InspectImage(std::string_view image) {
  ImageDetails d;
  {
    Result<ReadTransaction> txn = db_->BeginRead();
    if (!txn.ok()) return txn.status();
    Result<internal::Resolved> r = internal::ResolveIn(*txn, image);
    if (!r.ok()) return r.status();
    Result<ImageSummary> s = internal::LoadSummary(*txn, r->id);
    if (!s.ok()) return s.status();
    d.summary = std::move(*s);
    Result<Statement> st = txn->Prepare("SELECT media_type FROM manifests WHERE digest = ?");
    if (!st.ok()) return st.status();
    st->Bind(1, d.summary.manifest_digest.ToString());
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (*row) d.manifest_media_type = st->ColumnText(0);
    Result<Statement> ls = txn->Prepare(
        "SELECT il.blob_digest, il.media_type, il.size, l.diff_id, il.chain_id "
        "FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id "
        "WHERE il.image_id = ? ORDER BY il.position");
    if (!ls.ok()) return ls.status();
    ls->Bind(1, r->id.ToString());
    while (true) {
      Result<bool> lr = ls->Step();
      if (!lr.ok()) return lr.status();
      if (!*lr) break;
      LayerRecord l;
      Result<Digest> blob = ParseDigestColumn(*ls, 0);
      Result<Digest> diff = ParseDigestColumn(*ls, 3);
      Result<Digest> chain = ParseDigestColumn(*ls, 4);
      if (!blob.ok() || !diff.ok() || !chain.ok()) {
        return Status(Code::kCorruption, "bad layer row of image " + r->id.ToString());
      }
      l.digest = std::move(*blob);
      l.media_type = ls->ColumnText(1);
      l.size = static_cast<uint64_t>(ls->ColumnInt64(2));
      l.diff_id = std::move(*diff);
      l.chain_id = std::move(*chain);
      d.layers.push_back(std::move(l));
    }
  }
  // The documents are read after the snapshot ends: file I/O stays outside transactions.
  images::ParseLimits limits;
  Result<std::string> manifest = ReadBlob(d.summary.manifest_digest, limits.max_manifest_bytes);
  if (!manifest.ok()) return manifest.status().WithContext("inspect " + std::string(image));
  Result<std::string> config = ReadBlob(d.summary.id, limits.max_config_bytes);
  if (!config.ok()) return config.status().WithContext("inspect " + std::string(image));
  d.manifest = std::move(*manifest);
  d.config = std::move(*config);
  return d;
}

}  // namespace imgstore::store
