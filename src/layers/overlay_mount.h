// overlayfs mounts of cached layers: the writable view a container runs on
// (docs/layers.md, "Mounts").
//
// The lower directories are cached layer directories (nearest first, as overlayfs wants them);
// the upper and work directories belong to one mount. The mount is made with the new mount API
// (fsopen/fsconfig "lowerdir+", so the number of layers is not bounded by the page-sized option
// string of mount(2)) where the kernel has it (6.8+), else with mount(2).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "util/status.h"

namespace imgstore::layers {

struct OverlaySpec {
  std::vector<std::string> lower_dirs;  // nearest (top) layer first; at least one
  std::string upper_dir;                // empty for a read-only mount (2 lower dirs or more)
  std::string work_dir;                 // same file system as upper_dir; empty when read-only
  std::string target;                   // the mount point (an existing directory)
};

// Whether overlay mounts can be made here (root or CAP_SYS_ADMIN, and the kernel knows
// "overlay"): probed once per process with a throw-away mount under `scratch_dir`, cached.
// kUnsupported / kPermissionDenied name why not; the caller falls back to a copy.
Status OverlaySupported(const std::string& scratch_dir);

// Mounts `spec`. kPermissionDenied without the privilege; kUnsupported when the kernel lacks
// overlay; kIOError naming the mount point otherwise.
Status MountOverlay(const OverlaySpec& spec);

// Unmounts `target` (MNT_DETACH as a fallback when it is busy). OK when it is not mounted.
Status UnmountOverlay(const std::string& target);

// Whether `path` is a mount point (its st_dev differs from its parent's, or /proc/self/mountinfo
// lists it).
bool IsMountPoint(const std::string& path);

// Tests only: makes MountOverlay use mount(2) even where the new API works, so that the
// fallback (and its page-size bound) is tested on new kernels too. Process-wide.
void SetForceLegacyOverlayMountForTesting(bool force);

}  // namespace imgstore::layers
