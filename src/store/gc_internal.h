// The decision of gc, shared by GarbageCollect (which acts on it) and GetDiskUsage (which only
// reports it): what no image references and no live lease pins. docs/gc.md has the rules.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "locking/locking.h"
#include "store/db.h"
#include "store/store.h"

namespace imgstore::store::gc_internal {

struct LayerCandidate {
  Digest chain_id;
  std::string parent;        // parent_chain_id text, "" for a base layer
  std::string unpack_state;  // none, incomplete, complete
  uint64_t unpacked_size = 0;
};

struct GcPlan {
  std::vector<std::string> dead_leases;  // lease ids whose holder is gone
  std::vector<std::string> manifests;    // manifest/index rows nothing keeps
  std::vector<LayerCandidate> layers;    // layer rows no image chain uses
  std::vector<BlobInfo> blobs;           // blobs nothing references or pins (by digest)
  uint64_t pinned_unreferenced = 0;      // blobs kept only because a live lease pins them
};

// Reads the plan in `txn` (a snapshot or the write transaction about to act). Lease liveness is
// asked of `locks` (never waits). Rows of dead leases do not pin anything.
Result<GcPlan> Plan(Transaction& txn, const locking::LockSpace& locks);

// Adds to `keep` the ancestors among `layers` of each chain id in it (a row's parent must exist).
void AddAncestors(const std::vector<LayerCandidate>& layers, std::set<std::string>* keep);

// The ids of the `leases` rows whose holder is dead (or whose id is not a valid lease id).
Result<std::vector<std::string>> DeadLeases(Transaction& txn, const locking::LockSpace& locks);

// gc's intent log (table gc_pending, docs/gc.md "The intent log"): the kinds of entry.
inline constexpr std::string_view kPendingBlob = "blob";    // digest: a file in blobs/sha256
inline constexpr std::string_view kPendingLayer = "layer";  // digest: a chain id, its LayerDir

struct PendingResult {
  int files_removed = 0;  // blob files and layer directories that were still there
  int entries_done = 0;   // gc_pending rows deleted
  int skipped_busy = 0;   // entries whose lock is held (a gc or an ingest at work): left
};

// Finishes the removals that gc_pending lists: for each entry whose lock a try gets, looks again
// under the lock whether the row came back (a re-ingested blob keeps its file; a re-recorded
// layer that nobody unpacked, unpack_state 'none', has no directory to keep), removes the file
// or directory, and deletes the entry. Entries whose removal fails stay (the first error is
// returned after the others were done). Costs one read of an empty table when there is nothing
// to do; Store::Open runs it on every open, and gc before it looks for orphan files.
Result<PendingResult> FinishPendingRemovals(Db& db, Env* env, const locking::LockSpace& locks,
                                            const std::string& root);

// The recursive set of manifests that images keep (their manifest, their index, and the
// index's entries, through nested indexes), as a SQL common table expression "keep(d)".
extern const char kKeepManifestsCte[];

}  // namespace imgstore::store::gc_internal
