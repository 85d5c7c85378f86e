// The layer cache's internals (not part of the Store contract): the per-layer protocol that
// Store::AcquireLayers and Store::Unpack share, and the recovery and check of ROOT/layers that
// Store::Open and Store::Check call. store.h ("Layers on disk") states the protocol;
// docs/layers.md explains it.
#pragma once

#include <functional>
#include <span>
#include <string>

#include "layers/extract.h"
#include "locking/locking.h"
#include "store/db.h"
#include "store/images.h"
#include "store/store.h"
#include "util/env.h"
#include "util/status.h"

namespace imgstore::store::layer_cache {

// What the protocol needs of a Store (the members are private to it).
struct Context {
  Store* store;
  const std::string& root;
  Env* env;
  Db& db;
  const locking::LockSpace& locks;
  locking::Duration lock_timeout;
  std::function<void(const std::string& line)> on_wait;
};

// One layer taken for use.
struct HeldLayer {
  locking::LockGuard guard;    // shared when held; not held: the layer is not cached (see UseLayer)
  std::string dir;             // LayerDir when held
  bool extracted = false;      // this call extracted it
  layers::ExtractStats stats;  // of the extraction, when extracted
};

// Takes `layer` for use under its lock: shared when it is complete; otherwise, when `extract`,
// waits to be its one extractor (upgradable), looks again, and extracts it from its blob into a
// staging directory — and, in the same pass, into `apply_dir` (a flattened root filesystem,
// WhiteoutMode::kApply) when it is not empty — then publishes it; the lock is then downgraded
// to shared. Without `extract`, a layer that is not complete is returned not held. lower_dirs:
// the directories of the layers below, nearest first (already held by the caller). kNotFound
// "image removed" when the layer's row is gone (gc took it after an rmi).
Result<HeldLayer> UseLayer(const Context& ctx, const LayerRecord& layer,
                           std::span<const std::string> lower_dirs, const LayerUseOptions& options,
                           const std::string& apply_dir, bool extract);

// Extracts `layer` from its blob into `dir` only (a flattened root filesystem), leaving the
// cache alone (unpack --no-cache).
Result<layers::ExtractStats> ExtractInto(const Context& ctx, const LayerRecord& layer,
                                         const LayerUseOptions& options, const std::string& dir);

// Store::Open: removes staging directories and resets 'incomplete' rows whose layer lock is free
// (their extractor is dead). Returns how many it cleaned up. `after_listing` runs between reading
// the incomplete rows and locking each (tests: an extractor finishes right there).
Result<int> RecoverLayers(Db& db, Env* env, const locking::LockSpace& locks,
                          const std::string& root,
                          const std::function<void()>& after_listing = nullptr);

// Store::Check and Repair: the kLayerDir problems of ROOT/layers and the layers rows.
Status CheckLayers(Db& db, Env* env, const locking::LockSpace& locks, const std::string& root,
                   bool repair, CheckReport* report);

// syncfs(2) of the file system holding `dir`: makes an extracted tree durable in one call.
Status SyncFileSystem(const std::string& dir);

}  // namespace imgstore::store::layer_cache
