// The mounts' internals (not part of the Store contract): what Store::Open and Store::Check do
// about ROOT/mounts and the mounts rows. store.h (MountInfo, Store::Mount) states the contract;
// docs/layers.md ("Mounts") explains the protocol and the crash analysis.
#pragma once

#include <string>
#include <string_view>

#include "locking/locking.h"
#include "store/db.h"
#include "store/store.h"
#include "util/env.h"
#include "util/status.h"

namespace imgstore::store::mounts {

// ROOT/mounts, and the lock a mount's creator or remover holds: "mount-NAME".
std::string MountsDir(const std::string& root);
std::string MountLockName(std::string_view name);
// [A-Za-z0-9][A-Za-z0-9_.-]{0,127}
bool ValidMountName(std::string_view name);

// Store::Open: finishes what dead creators and removers left (their lock is free): a
// ROOT/mounts/NAME without a row, or a row still 'creating' or 'removing', is unmounted if
// mounted and removed with its rows. One stat of ROOT/mounts when there is none; otherwise a
// listing of it and one read of the mounts rows. Returns how many mounts it cleaned up.
Result<int> RecoverMounts(Db& db, Env* env, const locking::LockSpace& locks,
                          const std::string& root);

// Store::Check and Repair: the kMount problems (a row whose directories are missing, an entry
// of ROOT/mounts without a row or that imgstore never makes). Mounts whose lock is held (being
// created or removed right now) are not problems.
Status CheckMounts(Db& db, Env* env, const locking::LockSpace& locks, const std::string& root,
                   bool repair, CheckReport* report);

}  // namespace imgstore::store::mounts
