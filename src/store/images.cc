// Image records of a Store: AddImage (parse, verify that every blob is present, compute chainIDs,
// record manifest, image, layers and names in one write transaction), ListImages and
// InspectImage (read snapshots), and the chainID rule. A pull records the index it came from
// and the layers whose diffID it verified in the same transaction (AddImageWith).
#include <algorithm>
#include <string>
#include <string_view>
#include <unordered_map>
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
  return internal::AddImageWith(*this, manifest_bytes, manifest_media_type, config_bytes, names,
                                {});
}

namespace {

// Records an index and its entries, once (an index already recorded is left as it is).
Status RecordIndex(Transaction& txn, const internal::IndexRecord& rec, int64_t now) {
  Result<Statement> st = txn.Prepare(
      "INSERT OR IGNORE INTO manifests (digest, media_type, kind, config_digest, created) "
      "VALUES (?, ?, 'index', NULL, ?)");
  if (!st.ok()) return st.status();
  IMGSTORE_RETURN_IF_ERROR(
      st->Bind(1, rec.digest.ToString()).Bind(2, rec.index.media_type).Bind(3, now).Run());
  if (txn.Changes() == 0) return Status::OK();
  for (size_t i = 0; i < rec.index.manifests.size(); ++i) {
    const images::Descriptor& m = rec.index.manifests[i];
    Result<Statement> e = txn.Prepare(
        "INSERT INTO index_entries (index_digest, position, manifest_digest, media_type, size, "
        "os, architecture, variant) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    if (!e.ok()) return e.status();
    images::Platform p = m.platform.value_or(images::Platform{});
    IMGSTORE_RETURN_IF_ERROR(e->Bind(1, rec.digest.ToString())
                                 .Bind(2, static_cast<int64_t>(i))
                                 .Bind(3, m.digest.ToString())
                                 .Bind(4, m.media_type)
                                 .Bind(5, m.size)
                                 .Bind(6, p.os)
                                 .Bind(7, p.architecture)
                                 .Bind(8, p.variant)
                                 .Run());
  }
  return Status::OK();
}

}  // namespace

Result<AddImageResult> internal::AddImageWith(Store& store, std::string_view manifest_bytes,
                                              std::string_view manifest_media_type,
                                              std::string_view config_bytes,
                                              std::span<const std::string> names,
                                              const AddImageExtras& extras) {
  Db& db = store.db();
  // 1. Everything that can be checked without the store: nothing is written when it fails.
  Result<images::ImageManifest> manifest =
      images::ParseImageManifest(manifest_bytes, manifest_media_type, store.limits());
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
  Result<images::ImageConfig> config = images::ParseImageConfig(config_bytes, store.limits());
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
    Result<ReadTransaction> txn = db.BeginRead();
    if (!txn.ok()) return txn.status();
    IMGSTORE_RETURN_IF_ERROR(CheckBlobs(*txn, needed));
  }

  // 3. The manifest bytes are a blob too (ingest does its own locking and transaction).
  IngestOptions opts;
  opts.expected_size = manifest_bytes.size();
  opts.media_type = manifest->media_type;
  opts.operation = "add image " + config_digest.ToString();
  Result<IngestResult> ingested = store.IngestBlob(manifest_digest, opts, manifest_bytes);
  if (!ingested.ok()) return ingested.status().WithContext("add image: manifest");
  needed.push_back({"manifest", manifest_digest, manifest_bytes.size()});
  for (const internal::IndexRecord& rec : extras.indexes) {
    IMGSTORE_RETURN_IF_ERROR(RequireSha256(rec.digest, "index"));
    needed.push_back({"index", rec.digest, rec.size});
  }
  std::optional<std::string> index_digest;
  if (!extras.indexes.empty()) index_digest = extras.indexes.front().digest.ToString();

  // 4. One short write transaction. Blobs are checked again under it: gc may have removed one
  // since step 2 (then the manifest blob is left for gc, and nothing else is changed).
  const int64_t now = internal::NowUnixNs();
  Result<WriteTransaction> txn = db.BeginWrite();
  if (!txn.ok()) return txn.status();
  IMGSTORE_RETURN_IF_ERROR(CheckBlobs(*txn, needed));
  for (const internal::IndexRecord& rec : extras.indexes) {
    IMGSTORE_RETURN_IF_ERROR(RecordIndex(*txn, rec, now));
  }
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
        "architecture, variant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!st.ok()) return st.status();
    st->Bind(1, config_digest.ToString()).Bind(2, manifest_digest.ToString());
    if (index_digest) {
      st->Bind(3, *index_digest);
    } else {
      st->BindNull(3);
    }
    st->Bind(4, created)
        .Bind(5, now)
        .Bind(6, static_cast<int64_t>(size))
        .Bind(7, config->os)
        .Bind(8, config->architecture)
        .Bind(9, config->variant);
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
  } else if (index_digest) {
    // An image first added without its index (or from another index) keeps the first it got.
    Result<Statement> st =
        txn->Prepare("UPDATE images SET index_digest = ? WHERE id = ? AND index_digest IS NULL");
    if (!st.ok()) return st.status();
    IMGSTORE_RETURN_IF_ERROR(st->Bind(1, *index_digest).Bind(2, config_digest.ToString()).Run());
  }
  // A verified diffID holds for the chain whoever recorded it first.
  for (size_t i = 0; i < extras.diff_id_verified.size() && i < chain.size(); ++i) {
    if (!extras.diff_id_verified[i]) continue;
    Result<Statement> st =
        txn->Prepare("UPDATE layers SET diff_id_verified = 1 WHERE chain_id = ?");
    if (!st.ok()) return st.status();
    IMGSTORE_RETURN_IF_ERROR(st->Bind(1, chain[i].ToString()).Run());
  }
  if (!extras.blob_origin.empty()) {
    std::vector<Digest> blobs = {config_digest};
    for (const images::Descriptor& l : manifest->layers) blobs.push_back(l.digest);
    IMGSTORE_RETURN_IF_ERROR(internal::RecordBlobOrigins(*txn, blobs, extras.blob_origin, now));
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
  // Two plain scans in one snapshot, merged and sorted here. The join in index order (one
  // primary-key and one names_by_image search per image) took 3 times as long at 10,000 images;
  // scans read each page once (docs/performance.md, "imgstore list").
  Result<ReadTransaction> txn = db_->BeginRead();
  if (!txn.ok()) return txn.status();
  Result<Statement> st =
      txn->Prepare("SELECT " + std::string(internal::kSummaryColumns) + " FROM images i");
  if (!st.ok()) return st.status();
  std::vector<ImageSummary> all;
  while (true) {
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Result<ImageSummary> s = internal::ReadSummaryRow(*st);
    if (!s.ok()) return s.status();
    all.push_back(std::move(*s));
  }
  std::unordered_map<std::string_view, size_t> by_id;  // views of the ids in `all`, now stable
  by_id.reserve(all.size());
  for (size_t i = 0; i < all.size(); ++i) by_id.emplace(all[i].id.ToString(), i);
  Result<Statement> names = txn->Prepare("SELECT image_id, reference FROM names");
  if (!names.ok()) return names.status();
  while (true) {
    Result<bool> row = names->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    auto it = by_id.find(names->ColumnText(0));
    if (it != by_id.end()) all[it->second].names.push_back(names->ColumnText(1));
  }
  // Newest first, images without a creation time last (as ORDER BY created DESC), then by id.
  // Positions are sorted, not the summaries, which are costly to move.
  std::vector<size_t> order(all.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&all](size_t x, size_t y) {
    const ImageSummary& a = all[x];
    const ImageSummary& b = all[y];
    if (a.created.empty() != b.created.empty()) return b.created.empty();
    if (a.created_unix_ns != b.created_unix_ns) return a.created_unix_ns > b.created_unix_ns;
    return a.id < b.id;
  });
  std::vector<ImageSummary> out;
  out.reserve(all.size());
  for (size_t i : order) {
    ImageSummary& s = all[i];
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
  const images::ParseLimits& limits = options_.limits;
  Result<std::string> manifest = ReadBlob(d.summary.manifest_digest, limits.max_manifest_bytes);
  if (!manifest.ok()) {
    return images::NameLimit(manifest.status(), "max_manifest_bytes", limits.max_manifest_bytes)
        .WithContext("inspect " + std::string(image));
  }
  Result<std::string> config = ReadBlob(d.summary.id, limits.max_config_bytes);
  if (!config.ok()) {
    return images::NameLimit(config.status(), "max_config_bytes", limits.max_config_bytes)
        .WithContext("inspect " + std::string(image));
  }
  d.manifest = std::move(*manifest);
  d.config = std::move(*config);
  return d;
}

}  // namespace imgstore::store
