// Names of images and how an image argument is resolved: ResolveImage, Tag, Untag and Remove
// (rmi). Every change is one short write transaction that resolves its image inside itself, so
// that it acts on exactly what it resolved. docs/store.md ("Images and names") has the rules.
#include <algorithm>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "store/images_internal.h"
#include "store/store.h"

namespace imgstore::store {
namespace internal {
namespace {

bool IsHex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

Status NotKnown(std::string_view text) {
  return Status(Code::kNotFound, "image not known: " + std::string(text));
}

// The image whose column `column` (id or manifest_digest) is `value`, if any.
Result<std::optional<Digest>> FindBy(Transaction& txn, std::string_view sql,
                                     const std::string& value) {
  Result<Statement> st = txn.Prepare(sql);
  if (!st.ok()) return st.status();
  st->Bind(1, value);
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<Digest>();
  Result<Digest> d = Digest::Parse(st->ColumnText(0));
  if (!d.ok()) {
    return Status(Code::kCorruption, "bad image id \"" + st->ColumnText(0) + "\" in the database");
  }
  return std::optional<Digest>(std::move(*d));
}

// A full digest: an image id, else a manifest digest.
Result<std::optional<Digest>> FindByDigest(Transaction& txn, const Digest& d) {
  Result<std::optional<Digest>> found =
      FindBy(txn, "SELECT id FROM images WHERE id = ?", d.ToString());
  if (!found.ok() || found->has_value()) return found;
  return FindBy(txn, "SELECT id FROM images WHERE manifest_digest = ? ORDER BY id LIMIT 1",
                d.ToString());
}

Result<Resolved> FindByPrefix(Transaction& txn, std::string_view text, std::string_view hex) {
  // Ids are "sha256:" + lowercase hex, and every hex digit sorts before 'g'.
  std::string lo = "sha256:" + std::string(hex);
  Result<Statement> st =
      txn.Prepare("SELECT id FROM images WHERE id >= ? AND id < ? ORDER BY id LIMIT 11");
  if (!st.ok()) return st.status();
  st->Bind(1, lo).Bind(2, lo + "g");
  std::vector<std::string> ids;
  while (true) {
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ids.push_back(st->ColumnText(0));
  }
  if (ids.empty()) return NotKnown(text);
  if (ids.size() > 1) {
    std::string list;
    for (size_t i = 0; i < ids.size() && i < 10; ++i) list += (i ? ", " : "") + ids[i];
    if (ids.size() > 10) list += ", …";
    return Status(Code::kInvalidArgument,
                  "image id prefix \"" + std::string(text) + "\" is ambiguous: it matches " + list);
  }
  Result<Digest> d = Digest::Parse(ids[0]);
  if (!d.ok()) return Status(Code::kCorruption, "bad image id \"" + ids[0] + "\" in the database");
  return Resolved{std::move(*d), std::nullopt};
}

}  // namespace

int64_t NowUnixNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<images::Reference> ParseName(std::string_view text) {
  Result<images::Reference> ref = images::ParseReference(text);
  if (!ref.ok()) return ref.status();
  if (ref->digest) {
    return Status(Code::kInvalidArgument,
                  "invalid name \"" + std::string(text) + "\": a name cannot contain a digest");
  }
  return ref->WithDefaultTag();
}

Result<Resolved> ResolveIn(Transaction& txn, std::string_view text) {
  if (text.empty()) return Status(Code::kInvalidArgument, "empty image name");
  if (text.starts_with("sha256:")) {
    std::string_view hex = text.substr(7);
    Result<Digest> d = Digest::Parse(text);
    if (d.ok()) {
      Result<std::optional<Digest>> found = FindByDigest(txn, *d);
      if (!found.ok()) return found.status();
      if (!found->has_value()) return NotKnown(text);
      return Resolved{std::move(**found), std::nullopt};
    }
    if (IsHex(hex) && hex.size() >= kMinIdPrefix) return FindByPrefix(txn, text, hex);
    return Status(Code::kInvalidArgument, "invalid image id \"" + std::string(text) + "\"");
  }
  if (text.size() == 64 && IsHex(text)) {
    Result<Digest> d = Digest::Parse("sha256:" + std::string(text));
    if (!d.ok()) return d.status();
    Result<std::optional<Digest>> found = FindByDigest(txn, *d);
    if (!found.ok()) return found.status();
    if (!found->has_value()) return NotKnown(text);
    return Resolved{std::move(**found), std::nullopt};
  }
  // A name first (as docker does), then an id prefix.
  Result<images::Reference> ref = images::ParseReference(text);
  if (ref.ok()) {
    if (ref->digest) {
      Result<std::optional<Digest>> found =
          FindBy(txn, "SELECT id FROM images WHERE manifest_digest = ? ORDER BY id LIMIT 1",
                 ref->digest->ToString());
      if (!found.ok()) return found.status();
      if (!found->has_value()) return NotKnown(ref->Familiar());
      return Resolved{std::move(**found), std::nullopt};
    }
    images::Reference name = ref->WithDefaultTag();
    Result<std::optional<Digest>> found =
        FindBy(txn, "SELECT image_id FROM names WHERE reference = ?", name.String());
    if (!found.ok()) return found.status();
    if (found->has_value()) return Resolved{std::move(**found), name.String()};
    if (!(IsHex(text) && text.size() >= kMinIdPrefix)) return NotKnown(name.Familiar());
  }
  if (IsHex(text) && text.size() >= kMinIdPrefix) return FindByPrefix(txn, text, text);
  return ref.status();
}

Status PutName(Transaction& txn, const images::Reference& name, const Digest& id, int64_t now) {
  Result<Statement> st = txn.Prepare(
      "INSERT INTO names (reference, repository, tag, image_id, added) VALUES (?, ?, ?, ?, ?) "
      "ON CONFLICT (reference) DO UPDATE SET image_id = excluded.image_id, added = excluded.added "
      "WHERE image_id <> excluded.image_id");
  if (!st.ok()) return st.status();
  st->Bind(1, name.String()).Bind(2, name.Repository());
  if (name.tag) {
    st->Bind(3, *name.tag);
  } else {
    st->BindNull(3);
  }
  st->Bind(4, id.ToString()).Bind(5, now);
  return st->Run();
}

}  // namespace internal

namespace {

Result<std::vector<std::string>> NamesOf(Transaction& txn, const Digest& id) {
  Result<Statement> st =
      txn.Prepare("SELECT reference FROM names WHERE image_id = ? ORDER BY reference");
  if (!st.ok()) return st.status();
  st->Bind(1, id.ToString());
  std::vector<std::string> out;
  while (true) {
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(st->ColumnText(0));
  }
  return out;
}

Status RunWithId(Transaction& txn, std::string_view sql, const Digest& id) {
  Result<Statement> st = txn.Prepare(sql);
  if (!st.ok()) return st.status();
  st->Bind(1, id.ToString());
  return st->Run();
}

}  // namespace

Result<Digest> Store::ResolveImage(std::string_view text) {
  Result<ReadTransaction> txn = db_->BeginRead();
  if (!txn.ok()) return txn.status();
  Result<internal::Resolved> r = internal::ResolveIn(*txn, text);
  if (!r.ok()) return r.status();
  return std::move(r->id);
}

Status Store::Tag(std::string_view image, std::string_view name) {
  Result<images::Reference> ref = internal::ParseName(name);
  if (!ref.ok()) return ref.status().WithContext("tag");
  Result<WriteTransaction> txn = db_->BeginWrite();
  if (!txn.ok()) return txn.status();
  Result<internal::Resolved> r = internal::ResolveIn(*txn, image);
  if (!r.ok()) return r.status();
  IMGSTORE_RETURN_IF_ERROR(internal::PutName(*txn, *ref, r->id, internal::NowUnixNs()));
  return txn->Commit();
}

Status Store::Untag(std::string_view image, std::span<const std::string> names) {
  std::vector<images::Reference> refs;
  for (const std::string& n : names) {
    Result<images::Reference> ref = internal::ParseName(n);
    if (!ref.ok()) return ref.status().WithContext("untag");
    refs.push_back(std::move(*ref));
  }
  Result<WriteTransaction> txn = db_->BeginWrite();
  if (!txn.ok()) return txn.status();
  Result<internal::Resolved> r = internal::ResolveIn(*txn, image);
  if (!r.ok()) return r.status();
  if (refs.empty()) {
    IMGSTORE_RETURN_IF_ERROR(RunWithId(*txn, "DELETE FROM names WHERE image_id = ?", r->id));
    return txn->Commit();
  }
  for (const images::Reference& ref : refs) {
    Result<Statement> st = txn->Prepare("DELETE FROM names WHERE reference = ? AND image_id = ?");
    if (!st.ok()) return st.status();
    st->Bind(1, ref.String()).Bind(2, r->id.ToString());
    IMGSTORE_RETURN_IF_ERROR(st->Run());
    if (txn->Changes() == 0) {
      return Status(Code::kNotFound,
                    "untag: image " + r->id.ToString() + " has no name " + ref.Familiar());
    }
  }
  return txn->Commit();
}

Result<RemoveImageResult> Store::Remove(std::string_view image, bool force) {
  Result<WriteTransaction> txn = db_->BeginWrite();
  if (!txn.ok()) return txn.status();
  Result<internal::Resolved> r = internal::ResolveIn(*txn, image);
  if (!r.ok()) return r.status();
  Result<std::vector<std::string>> names = NamesOf(*txn, r->id);
  if (!names.ok()) return names.status();
  RemoveImageResult result;
  bool delete_image = force || names->size() <= 1;
  if (r->name && !force) {
    // rmi NAME: that name goes; the image goes with its last name.
    Result<Statement> st = txn->Prepare("DELETE FROM names WHERE reference = ?");
    if (!st.ok()) return st.status();
    st->Bind(1, *r->name);
    IMGSTORE_RETURN_IF_ERROR(st->Run());
    result.untagged.push_back(*r->name);
  } else if (!delete_image) {
    std::string list;
    for (const std::string& n : *names) list += (list.empty() ? "" : ", ") + n;
    return Status(Code::kFailedPrecondition, "rmi " + std::string(image) + ": image " +
                                                 r->id.ToString() + " has " +
                                                 std::to_string(names->size()) + " names (" + list +
                                                 "); remove them by name, or force");
  } else {
    result.untagged = *names;
  }
  if (delete_image) {
    Result<std::optional<std::string>> manifest = [&]() -> Result<std::optional<std::string>> {
      Result<Statement> st = txn->Prepare("SELECT manifest_digest FROM images WHERE id = ?");
      if (!st.ok()) return st.status();
      st->Bind(1, r->id.ToString());
      Result<bool> row = st->Step();
      if (!row.ok()) return row.status();
      if (!*row) return std::optional<std::string>();
      return std::optional<std::string>(st->ColumnText(0));
    }();
    if (!manifest.ok()) return manifest.status();
    // Names and image_layers go with the image (ON DELETE CASCADE).
    IMGSTORE_RETURN_IF_ERROR(RunWithId(*txn, "DELETE FROM images WHERE id = ?", r->id));
    if (manifest->has_value()) {
      Result<Statement> st = txn->Prepare(
          "DELETE FROM manifests WHERE digest = ?1 AND kind = 'manifest' AND NOT EXISTS "
          "(SELECT 1 FROM images WHERE manifest_digest = ?1 OR index_digest = ?1) AND NOT EXISTS "
          "(SELECT 1 FROM mounts WHERE manifest_digest = ?1)");
      if (!st.ok()) return st.status();
      st->Bind(1, **manifest);
      IMGSTORE_RETURN_IF_ERROR(st->Run());
    }
    result.deleted = r->id;
    result.untagged = *names;
  }
  IMGSTORE_RETURN_IF_ERROR(txn->Commit());
  return result;
}

}  // namespace imgstore::store
