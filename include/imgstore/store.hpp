// The public C++ API of imgstore: one Store handle on a store root, with the operations of the
// imgstore command. docs/embedding.md walks through it; include/imgstore/imgstore.h is the same
// API as a C ABI.
//
// ERRORS: every call returns a Status or a Result<T> (status.hpp): a Code to branch on and one
// line of text that names what failed. No exception leaves the library; a failed allocation
// inside it is reported as kInternal where it can be caught.
//
// THREADS: a Store is thread-safe. Share one handle between all the threads of a process: every
// method may be called from any number of threads at once, and several processes (each with its
// own Store) may share one root. Nothing waits for a long operation: List, Inspect and Tag
// answer while a pull or push streams. Callbacks (progress, on_wait) run on the calling thread
// or on the operation's worker threads, one call at a time per operation; they must not call
// back into the same operation.
//
// CANCELLATION: the long operations take a CancelToken in their options (types.hpp).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "imgstore/parse.hpp"
#include "imgstore/registry.hpp"
#include "imgstore/status.hpp"
#include "imgstore/types.hpp"

namespace imgstore {

// "0.1.0": the version of the library the program runs with.
const char* Version();

class Store {
 public:
  // Opens the store at `root` (created with its layout when missing; "" for DefaultRoot()), and
  // quietly repairs what crashed writers left.
  static Result<std::unique_ptr<Store>> Open(const std::string& root,
                                             const StoreOptions& options = {});
  // $IMGSTORE_ROOT, else /var/lib/imgstore for root, else $XDG_DATA_HOME/imgstore, else
  // ~/.local/share/imgstore.
  static Result<std::string> DefaultRoot();
  // Whether a store has been created at `root` (false when it or its database is missing),
  // without creating or locking anything: a reader can then show an empty store instead of
  // creating one (after a typo in the root, say).
  static Result<bool> Exists(const std::string& root);
  // Who holds and waits for the locks of the store at `root`, and its leases, without opening
  // the store: no lock is taken, so this answers while a writer holds the store's locks (a
  // "why is this waiting" display). `all` also lists idle locks.
  static Result<LocksReport> ListLocks(const std::string& root, bool all = false);

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& root() const;

  // Copies an image into the store from `source`: "docker://REGISTRY/NAME[:TAG|@DIGEST]" (or
  // the bare reference), "oci:DIR[:REF]", "oci-archive:FILE[:REF]", "docker-archive:FILE[:REF]".
  // Nothing is recorded unless every blob verified; a cancelled or failed pull leaves only
  // verified blobs for gc.
  Result<PullResult> Pull(std::string_view source, const PullOptions& options = {});
  // Writes the image `image` (a name, id, unique id prefix or manifest digest) to
  // `destination` (the same syntax as a pull source). An empty destination pushes to the
  // registry that `image`, a registry reference, names.
  Result<PushResult> Push(std::string_view image, std::string_view destination = {},
                          const PushOptions& options = {});

  // Every image, newest first. filter: "" for all, or a reference (with a tag: that name;
  // without: the images of that repository).
  Result<std::vector<ImageSummary>> List(std::string_view filter = {});
  Result<ImageDetails> Inspect(std::string_view image);
  // The id ("sha256:HEX") of `image` (a name, id, unique id prefix of at least kMinIdPrefix hex
  // digits, or manifest digest): kNotFound "image not known: ...", kInvalidArgument for text
  // that is none of these. Resolve once to act on one image while names may move.
  Result<std::string> Resolve(std::string_view image);
  // Gives `image` the name (a name held by another image moves here).
  Status Tag(std::string_view image, std::string_view name);
  // Removes the given names of the image, or all of them when `names` is empty.
  Status Untag(std::string_view image, const std::vector<std::string>& names = {});
  // rmi: by name removes that name (and the image when none is left); by id removes the image
  // (kFailedPrecondition when it has several names, unless force). Blobs stay for gc.
  Result<RemoveResult> Remove(std::string_view image, bool force = false);

  // A flattened root filesystem of the image in `dir` (which must not exist; its parent must).
  Result<UnpackResult> Unpack(std::string_view image, const std::string& dir,
                              const UnpackOptions& options = {});
  // A container's writable view of the image (overlayfs, or a copy where overlay is missing).
  Result<MountInfo> Mount(std::string_view image, const MountOptions& options = {});
  // Unmounts and removes a mount (by name, mount point or directory).
  Status Unmount(std::string_view name_or_path);
  Result<std::vector<MountInfo>> Mounts();
  // A new image: the base image plus one layer with the changes of the mount `source` (with
  // base_image empty), or of the directory `source` against `base_image`.
  Result<CommitResult> Commit(std::string_view source, std::string_view base_image = {},
                              const CommitOptions& options = {});

  // Removes what no image references and nothing uses (blobs, layers, dead leases).
  Result<GcReport> Gc(const GcOptions& options = {});
  // The space the store takes, and what Gc would reclaim now (df).
  Result<DiskUsage> Df();
  // Verifies the store's invariants; with repair, fixes what can be fixed.
  Result<CheckReport> Check(const CheckOptions& options = {});
  // Who holds and waits for the store's locks, and the leases; `all` also lists idle locks.
  Result<LocksReport> Locks(bool all = false);

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace imgstore
