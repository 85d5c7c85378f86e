// Store leases: a LockSpace liveness lease plus its `leases` row and the `lease_blobs` it pins.
// gc skips pinned digests of live leases; a holder killed by SIGKILL voids its lease at once
// (the kernel drops its lock), and Store::Open or gc drops the rows later.
//
// Order: the lease file is locked before its row exists and the row is deleted before the file
// is released, so a row never names a lease that reads alive without being ours, and a reader
// that finds a row whose lease is dead may delete it without racing its owner.
#include <chrono>
#include <utility>
#include <vector>

#include "store/store.h"

namespace imgstore::store {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class StoreLeaseImpl final : public StoreLease {
 public:
  StoreLeaseImpl(Db* db, locking::Lease lease) : db_(db), lease_(std::move(lease)) {}
  ~StoreLeaseImpl() override { (void)Release(); }

  const std::string& id() const override { return id_; }

  Status Pin(std::span<const Digest> digests) override {
    if (!lease_.held()) {
      return Status(Code::kFailedPrecondition, "lease " + id_ + " is already released");
    }
    if (digests.empty()) return Status::OK();
    Result<WriteTransaction> txn = db_->BeginWrite();
    if (!txn.ok()) return txn.status().WithContext("pin blobs for lease " + id_);
    for (const Digest& d : digests) {
      Result<Statement> st =
          txn->Prepare("INSERT OR IGNORE INTO lease_blobs (lease_id, blob_digest) VALUES (?, ?)");
      if (!st.ok()) return st.status();
      IMGSTORE_RETURN_IF_ERROR(st->Bind(1, id_).Bind(2, d.ToString()).Run());
    }
    return txn->Commit().WithContext("pin blobs for lease " + id_);
  }

  Status Release() override {
    if (!lease_.held()) return Status::OK();
    Status s = DropRow();
    // The file goes even if the row could not: a dead lease's row is dropped by the next
    // Store::Open or gc, and holding the lease any longer would only pin blobs for nothing.
    lease_.Release();
    return s.WithContext("release lease " + id_);
  }

  // Called once the lease file is held.
  Status Record(std::string_view label) {
    id_ = lease_.id();
    Result<WriteTransaction> txn = db_->BeginWrite();
    if (!txn.ok()) return txn.status();
    Result<Statement> st = txn->Prepare("INSERT INTO leases (id, label, created) VALUES (?, ?, ?)");
    if (!st.ok()) return st.status();
    IMGSTORE_RETURN_IF_ERROR(st->Bind(1, id_).Bind(2, label).Bind(3, NowNs()).Run());
    return txn->Commit();
  }

 private:
  Status DropRow() {
    Result<WriteTransaction> txn = db_->BeginWrite();
    if (!txn.ok()) return txn.status();
    // lease_blobs go by cascade (foreign_keys=ON on every connection).
    Result<Statement> st = txn->Prepare("DELETE FROM leases WHERE id = ?");
    if (!st.ok()) return st.status();
    IMGSTORE_RETURN_IF_ERROR(st->Bind(1, id_).Run());
    return txn->Commit();
  }

  Db* db_;
  locking::Lease lease_;
  std::string id_;
};

}  // namespace

Result<std::unique_ptr<StoreLease>> Store::CreateLease(std::string_view label) {
  Result<locking::Lease> lease = locks_.CreateLease(label);
  if (!lease.ok()) return lease.status().WithContext("create lease");
  auto impl = std::make_unique<StoreLeaseImpl>(db_.get(), std::move(*lease));
  Status s = impl->Record(label);
  if (!s.ok()) {
    // Nothing was committed; the destructor deletes no row and releases the file.
    return s.WithContext("create lease");
  }
  return std::unique_ptr<StoreLease>(std::move(impl));
}

Result<std::unique_ptr<StoreLease>> Store::PinImage(const ImageDetails& image,
                                                    std::string_view operation,
                                                    std::string_view what) {
  Result<std::unique_ptr<StoreLease>> lease = CreateLease(operation);
  if (!lease.ok()) return lease.status().WithContext(what);
  std::vector<Digest> blobs = {image.summary.id};
  for (const LayerRecord& l : image.layers) blobs.push_back(l.digest);
  // The chain ids keep the layer rows (and so the cached layers) that gc would drop with the
  // image; the blobs are what a layer not in the cache is extracted from.
  std::vector<Digest> pins = blobs;
  for (const LayerRecord& l : image.layers) pins.push_back(l.chain_id);
  IMGSTORE_RETURN_IF_ERROR((*lease)->Pin(pins).WithContext(what));
  // Pinned now; a gc that ran between the inspect and the pin shows here.
  for (const Digest& d : blobs) {
    Result<bool> has = HasBlob(d);
    if (!has.ok()) return has.status().WithContext(what);
    if (!*has) {
      return Status(Code::kNotFound, std::string(what) + ": image removed meanwhile (its blob " +
                                         d.ToString() + " is gone)");
    }
  }
  return lease;
}

}  // namespace imgstore::store
