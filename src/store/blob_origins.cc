// Blob origins (schema v3, table blob_origins): the registry repositories known to hold a blob,
// recorded by pulls from and pushes to registries and read by a push that may ask a registry
// for a cross-repository mount. docs/pull-push.md, "Blob origins".
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "store/images_internal.h"
#include "store/store.h"

namespace imgstore::store {

Status internal::RecordBlobOrigins(Transaction& txn, std::span<const Digest> digests,
                                   std::string_view repository, int64_t now) {
  if (repository.empty()) return Status::OK();
  // `added` is strictly increasing per blob (a clock that stepped back, or two records within
  // one tick, still order), so "most recent" is well defined for the bound. A blob without a
  // row (gc took it meanwhile) gets none: the rows belong to the blob.
  constexpr std::string_view kUpsert =
      "INSERT INTO blob_origins (digest, repository, added) "
      "SELECT ?1, ?2, MAX(?3, IFNULL((SELECT MAX(added) FROM blob_origins WHERE digest = ?1), 0) "
      "+ 1) WHERE EXISTS (SELECT 1 FROM blobs WHERE digest = ?1) "
      "ON CONFLICT (digest, repository) DO UPDATE SET added = excluded.added";
  constexpr std::string_view kPrune =
      "DELETE FROM blob_origins WHERE digest = ?1 AND repository NOT IN "
      "(SELECT repository FROM blob_origins WHERE digest = ?1 ORDER BY added DESC LIMIT ?2)";
  std::vector<std::string> done;
  for (const Digest& d : digests) {
    std::string text = d.ToString();
    if (std::find(done.begin(), done.end(), text) != done.end()) continue;
    Result<Statement> up = txn.Prepare(kUpsert);
    if (!up.ok()) return up.status();
    IMGSTORE_RETURN_IF_ERROR(up->Bind(1, text).Bind(2, repository).Bind(3, now).Run());
    Result<Statement> prune = txn.Prepare(kPrune);
    if (!prune.ok()) return prune.status();
    IMGSTORE_RETURN_IF_ERROR(
        prune->Bind(1, text).Bind(2, static_cast<int64_t>(kMaxBlobOrigins)).Run());
    done.push_back(std::move(text));
  }
  return Status::OK();
}

Result<std::map<Digest, std::vector<std::string>>> internal::ReadBlobOrigins(
    Transaction& txn, std::span<const Digest> digests) {
  std::map<Digest, std::vector<std::string>> out;
  for (const Digest& d : digests) {
    if (out.count(d) != 0) continue;
    Result<Statement> st =
        txn.Prepare("SELECT repository FROM blob_origins WHERE digest = ? ORDER BY repository");
    if (!st.ok()) return st.status();
    st->Bind(1, d.ToString());
    std::vector<std::string> repos;
    while (true) {
      Result<bool> row = st->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      repos.push_back(st->ColumnText(0));
    }
    if (!repos.empty()) out.emplace(d, std::move(repos));
  }
  return out;
}

Result<std::vector<std::string>> Store::BlobOrigins(const Digest& digest) {
  Result<ReadTransaction> txn = db_->BeginRead();
  if (!txn.ok()) return txn.status();
  const Digest one[] = {digest};
  Result<std::map<Digest, std::vector<std::string>>> all = internal::ReadBlobOrigins(*txn, one);
  if (!all.ok()) return all.status().WithContext("origins of blob " + digest.ToString());
  auto it = all->find(digest);
  if (it == all->end()) return std::vector<std::string>();
  return std::move(it->second);
}

}  // namespace imgstore::store
