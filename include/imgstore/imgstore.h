/* imgstore C ABI: the store's operations for programs not written in C++ (and for bindings: Go,
 * Rust, Python). docs/embedding.md walks through it; the C++ API is include/imgstore/store.hpp.
 *
 * RULES OF THE ABI
 * - Handles are opaque (struct imgstore_store, ...), made by the library and released by the
 *   matching *_free / imgstore_store_close. Passing NULL to a free function does nothing.
 * - Every fallible function returns an imgstore_code (IMGSTORE_OK == 0) and takes as its last
 *   parameter an `imgstore_error **err`. When the call fails and err is not NULL, *err receives a
 *   new error object (its code and one line of text naming what failed) that the caller frees
 *   with imgstore_error_free. err may be NULL when only the code matters. No thread-local state.
 * - Strings passed in are UTF-8 (file paths: bytes), NUL-terminated, and only read during the
 *   call. Strings returned as `char *` belong to the caller (imgstore_string_free); strings
 *   returned as `const char *` by an accessor belong to the handle and live as long as it.
 * - Out-parameters are written only on success (*out set to NULL first when it is a handle).
 * - Nothing throws across the ABI and no C++ type crosses it. Running out of memory is
 *   IMGSTORE_ERR_NO_MEMORY.
 * - THREADS: an imgstore_store is thread-safe: share one between all threads; its functions may
 *   run concurrently. Option objects, lists and error objects are not: one thread at a time each.
 *   A cancel token may be cancelled from any thread while an operation uses it. Callbacks run on
 *   the operation's threads, one call at a time, and must not call the same operation again.
 * - Compatibility: functions are only ever added within SOVERSION 0; enum values keep their
 *   numbers.
 */
#ifndef IMGSTORE_IMGSTORE_H_
#define IMGSTORE_IMGSTORE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes: the C++ imgstore::Code values, plus NO_MEMORY. */
typedef enum imgstore_code {
  IMGSTORE_OK = 0,
  IMGSTORE_ERR_INVALID_ARGUMENT = 1,     /* malformed input: a reference, an option, NULL */
  IMGSTORE_ERR_NOT_FOUND = 2,            /* the named image, mount or file does not exist */
  IMGSTORE_ERR_ALREADY_EXISTS = 3,       /* the object exists and the call does not replace it */
  IMGSTORE_ERR_CORRUPTION = 4,           /* data fails a check (digest, size, format) */
  IMGSTORE_ERR_IO = 5,                   /* the operating system refused an operation */
  IMGSTORE_ERR_NO_SPACE = 6,             /* the disk (or a quota) is full */
  IMGSTORE_ERR_PERMISSION_DENIED = 7,    /* the operating system or a registry said no */
  IMGSTORE_ERR_TIMEOUT = 8,              /* a lock wait passed its deadline */
  IMGSTORE_ERR_BUSY = 9,                 /* the object is in use */
  IMGSTORE_ERR_UNAVAILABLE = 10,         /* a registry cannot be reached now */
  IMGSTORE_ERR_FAILED_PRECONDITION = 11, /* the object is in the wrong state for the call */
  IMGSTORE_ERR_CANCELLED = 12,           /* the cancel token was cancelled */
  IMGSTORE_ERR_UNSUPPORTED = 13,         /* valid input that imgstore does not handle */
  IMGSTORE_ERR_INTERNAL = 14,            /* a bug in imgstore */
  IMGSTORE_ERR_NO_MEMORY = 15            /* an allocation failed */
} imgstore_code;

typedef struct imgstore_error imgstore_error;
typedef struct imgstore_store imgstore_store;
typedef struct imgstore_cancel_token imgstore_cancel_token;
typedef struct imgstore_copy_options imgstore_copy_options;
typedef struct imgstore_image imgstore_image;
typedef struct imgstore_image_list imgstore_image_list;
typedef struct imgstore_mount_info imgstore_mount_info;
typedef struct imgstore_mount_list imgstore_mount_list;
typedef struct imgstore_check_report imgstore_check_report;
typedef struct imgstore_lock_list imgstore_lock_list;

/* --- Library, errors, strings -------------------------------------------------------------- */

/* "0.1.0". Static storage. */
const char* imgstore_version(void);
/* "not found", "cancelled", ... for a code; "unknown" for a value outside the enum. Static. */
const char* imgstore_code_name(imgstore_code code);

imgstore_code imgstore_error_code(const imgstore_error* err); /* IMGSTORE_OK for NULL */
/* One line naming what failed ("" for NULL). Lives as long as err. */
const char* imgstore_error_message(const imgstore_error* err);
void imgstore_error_free(imgstore_error* err);

void imgstore_string_free(char* s);

/* --- Cancellation ---------------------------------------------------------------------------- */

/* A token that stops the operations it was given to (pull, push, unpack, mount): they return
 * IMGSTORE_ERR_CANCELLED within a second and leave the store as before. NULL when out of memory.
 * Freeing a token while an operation uses it is allowed (the operation keeps its own reference). */
imgstore_cancel_token* imgstore_cancel_token_new(void);
/* From any thread, any number of times. */
imgstore_code imgstore_cancel_token_cancel(imgstore_cancel_token* token, imgstore_error** err);
/* 1 when cancelled, 0 when not (or token is NULL). */
int imgstore_cancel_token_is_cancelled(const imgstore_cancel_token* token);
void imgstore_cancel_token_free(imgstore_cancel_token* token);

/* --- The store ------------------------------------------------------------------------------- */

/* Opens (creating when missing) the store at root; NULL root: the default root ($IMGSTORE_ROOT,
 * /var/lib/imgstore for root, else ~/.local/share/imgstore). lock_timeout_ms: how long a call
 * waits for a lock that another thread or process holds; 0 for the default (60 s). */
imgstore_code imgstore_store_open(const char* root, int64_t lock_timeout_ms, imgstore_store** out,
                                  imgstore_error** err);
/* The same, with bounds on untrusted input other than the defaults: limits is a comma-separated
 * list of NAME=VALUE ("max_manifest_bytes=16MiB,max_ratio=0"; the names and units of
 * imgstore::SetLimit, include/imgstore/parse.hpp, and of `imgstore --limit`), or NULL or "" for
 * the defaults. A bad list is IMGSTORE_ERR_INVALID_ARGUMENT naming the item. */
imgstore_code imgstore_store_open_with_limits(const char* root, int64_t lock_timeout_ms,
                                              const char* limits, imgstore_store** out,
                                              imgstore_error** err);
void imgstore_store_close(imgstore_store* store);
/* The store's root directory, or NULL for a NULL store. Lives as long as the store. */
const char* imgstore_store_root(const imgstore_store* store);

/* --- Pull and push ---------------------------------------------------------------------------- */

/* Progress of one blob: `done` of `total` bytes copied, or skipped (already present at the other
 * end). `digest` is only valid during the call. */
typedef void (*imgstore_progress_fn)(void* user, const char* digest, uint64_t done, uint64_t total,
                                     int skipped);

/* Options of a pull or push; every setter copies what it is given. NULL when out of memory. */
imgstore_copy_options* imgstore_copy_options_new(void);
void imgstore_copy_options_free(imgstore_copy_options* options);
/* Pull: "os/arch[/variant]" chosen from an index (default: this host's). */
imgstore_code imgstore_copy_options_set_platform(imgstore_copy_options* options,
                                                 const char* platform, imgstore_error** err);
/* Pull: one more name for the image (a reference; default tag "latest"). */
imgstore_code imgstore_copy_options_add_name(imgstore_copy_options* options, const char* name,
                                             imgstore_error** err);
/* Blobs copied at once from or to a registry, 1..64 (default 3). */
imgstore_code imgstore_copy_options_set_max_parallel(imgstore_copy_options* options,
                                                     int max_parallel, imgstore_error** err);
/* Registry credentials "USER:PASSWORD" (NULL: from the auth files). */
imgstore_code imgstore_copy_options_set_credentials(imgstore_copy_options* options,
                                                    const char* user_password,
                                                    imgstore_error** err);
imgstore_code imgstore_copy_options_set_auth_file(imgstore_copy_options* options, const char* path,
                                                  imgstore_error** err);
/* A certs.d-style directory: CA *.crt, client.cert and client.key. */
imgstore_code imgstore_copy_options_set_cert_dir(imgstore_copy_options* options, const char* dir,
                                                 imgstore_error** err);
/* 0: accept any certificate and allow plain http. 1 (default): verified https. */
imgstore_code imgstore_copy_options_set_tls_verify(imgstore_copy_options* options, int verify,
                                                   imgstore_error** err);
/* fn(user, ...) per progress step (fn NULL: none). */
imgstore_code imgstore_copy_options_set_progress(imgstore_copy_options* options,
                                                 imgstore_progress_fn fn, void* user,
                                                 imgstore_error** err);
/* The operation stops when the token is cancelled (token NULL: none). */
imgstore_code imgstore_copy_options_set_cancel(imgstore_copy_options* options,
                                               imgstore_cancel_token* token, imgstore_error** err);

/* Copies an image into the store from `source`: "docker://REGISTRY/NAME[:TAG|@DIGEST]" (or the
 * bare reference), "oci:DIR[:REF]", "oci-archive:FILE[:REF]", "docker-archive:FILE[:REF]".
 * options may be NULL. *image_id (may be NULL) receives the image id ("sha256:..."). */
imgstore_code imgstore_pull(imgstore_store* store, const char* source,
                            const imgstore_copy_options* options, char** image_id,
                            imgstore_error** err);
/* Writes `image` (name, id, id prefix or manifest digest) to `destination` (same syntax as a
 * pull source; NULL: the registry that `image` names). *manifest_digest may be NULL. */
imgstore_code imgstore_push(imgstore_store* store, const char* image, const char* destination,
                            const imgstore_copy_options* options, char** manifest_digest,
                            imgstore_error** err);

/* --- Images ----------------------------------------------------------------------------------- */

/* Every image, newest first. filter: NULL or "" for all, else a reference. */
imgstore_code imgstore_list(imgstore_store* store, const char* filter, imgstore_image_list** out,
                            imgstore_error** err);
size_t imgstore_image_list_count(const imgstore_image_list* list);
/* The i-th image (NULL when i is out of range); lives as long as the list. */
const imgstore_image* imgstore_image_list_at(const imgstore_image_list* list, size_t i);
void imgstore_image_list_free(imgstore_image_list* list);

/* One image, with its manifest, config and layers. */
imgstore_code imgstore_inspect(imgstore_store* store, const char* image, imgstore_image** out,
                               imgstore_error** err);
void imgstore_image_free(imgstore_image* image);

/* Accessors of an image from a list or from imgstore_inspect. For a NULL image (or an index out
 * of range): NULL, or 0. Strings live as long as the image. manifest, config and the layers are
 * only filled by imgstore_inspect (NULL / 0 for an image of a list). */
const char* imgstore_image_id(const imgstore_image* image);
const char* imgstore_image_manifest_digest(const imgstore_image* image);
size_t imgstore_image_name_count(const imgstore_image* image);
const char* imgstore_image_name(const imgstore_image* image, size_t i);
uint64_t imgstore_image_size(const imgstore_image* image);
const char* imgstore_image_created(const imgstore_image* image); /* RFC 3339, "" if unknown */
const char* imgstore_image_os(const imgstore_image* image);
const char* imgstore_image_architecture(const imgstore_image* image);
const char* imgstore_image_manifest(const imgstore_image* image);
const char* imgstore_image_config(const imgstore_image* image);
size_t imgstore_image_layer_count(const imgstore_image* image);
const char* imgstore_image_layer_digest(const imgstore_image* image, size_t i);
const char* imgstore_image_layer_diff_id(const imgstore_image* image, size_t i);
uint64_t imgstore_image_layer_size(const imgstore_image* image, size_t i);

/* Gives `image` the name (moved from another image that had it). */
imgstore_code imgstore_tag(imgstore_store* store, const char* image, const char* name,
                           imgstore_error** err);
/* Removes the `count` names of the image, or all its names when count is 0. */
imgstore_code imgstore_untag(imgstore_store* store, const char* image, const char* const* names,
                             size_t count, imgstore_error** err);
/* rmi: by name removes that name (and the image when none is left); by id removes the image
 * (IMGSTORE_ERR_FAILED_PRECONDITION when it has several names, unless force). *deleted (may be
 * NULL) is 1 when the image record was removed. */
imgstore_code imgstore_remove(imgstore_store* store, const char* image, int force, int* deleted,
                              imgstore_error** err);

/* --- Layers: unpack, mount, commit -------------------------------------------------------------
 */

/* A flattened root filesystem of `image` in `dir` (must not exist; its parent must). token may
 * be NULL. */
imgstore_code imgstore_unpack(imgstore_store* store, const char* image, const char* dir,
                              imgstore_cancel_token* token, imgstore_error** err);
/* A writable view of `image`. name: NULL for a generated one; kind: NULL or "auto", "overlay",
 * "copy". */
imgstore_code imgstore_mount(imgstore_store* store, const char* image, const char* name,
                             const char* kind, imgstore_cancel_token* token,
                             imgstore_mount_info** out, imgstore_error** err);
void imgstore_mount_info_free(imgstore_mount_info* mount);
const char* imgstore_mount_info_name(const imgstore_mount_info* mount);
const char* imgstore_mount_info_path(const imgstore_mount_info* mount); /* the mount point */
const char* imgstore_mount_info_kind(const imgstore_mount_info* mount); /* "overlay" or "copy" */
const char* imgstore_mount_info_image_id(const imgstore_mount_info* mount);
/* Unmounts and removes a mount (name, mount point or directory). */
imgstore_code imgstore_umount(imgstore_store* store, const char* name_or_path,
                              imgstore_error** err);
imgstore_code imgstore_mounts(imgstore_store* store, imgstore_mount_list** out,
                              imgstore_error** err);
size_t imgstore_mount_list_count(const imgstore_mount_list* list);
const imgstore_mount_info* imgstore_mount_list_at(const imgstore_mount_list* list, size_t i);
void imgstore_mount_list_free(imgstore_mount_list* list);
/* A new image: the base image plus one layer with the changes of the mount `source` (base_image
 * NULL), or of the directory `source` against base_image. name may be NULL. *image_id (may be
 * NULL) receives the new image's id. */
imgstore_code imgstore_commit(imgstore_store* store, const char* source, const char* base_image,
                              const char* name, char** image_id, imgstore_error** err);

/* --- Maintenance ------------------------------------------------------------------------------ */

typedef struct imgstore_gc_report {
  uint64_t blobs_removed;
  uint64_t bytes_removed;
  uint64_t manifests_removed;
  uint64_t layers_removed;
  uint64_t leases_removed;
} imgstore_gc_report;

/* Removes what no image references and nothing uses. report may be NULL. */
imgstore_code imgstore_gc(imgstore_store* store, int dry_run, imgstore_gc_report* report,
                          imgstore_error** err);

/* Verifies the store's invariants (verify_content: also hash every blob); with repair, fixes
 * what can be fixed. A store with problems is a success: look at the report. */
imgstore_code imgstore_check(imgstore_store* store, int verify_content, int repair,
                             imgstore_check_report** out, imgstore_error** err);
/* 1 when no problem is left unrepaired (also for NULL). */
int imgstore_check_report_clean(const imgstore_check_report* report);
size_t imgstore_check_report_count(const imgstore_check_report* report);
const char* imgstore_check_report_kind(const imgstore_check_report* report, size_t i);
const char* imgstore_check_report_message(const imgstore_check_report* report, size_t i);
void imgstore_check_report_free(imgstore_check_report* report);

/* Who holds and waits for the store's locks, and the leases: one row per holder, waiter, idle
 * lock (with all) and lease. */
imgstore_code imgstore_locks(imgstore_store* store, int all, imgstore_lock_list** out,
                             imgstore_error** err);
size_t imgstore_lock_list_count(const imgstore_lock_list* list);
/* The lock's name, or "lease ID" for a lease. */
const char* imgstore_lock_list_name(const imgstore_lock_list* list, size_t i);
/* "held", "waiting", "free" (a lock), "held" or "dead" (a lease). */
const char* imgstore_lock_list_state(const imgstore_lock_list* list, size_t i);
int imgstore_lock_list_pid(const imgstore_lock_list* list, size_t i); /* 0: none */
const char* imgstore_lock_list_operation(const imgstore_lock_list* list, size_t i);
void imgstore_lock_list_free(imgstore_lock_list* list);

/* The space the store takes, and what imgstore_gc would reclaim now (df). Filled by the
 * library; like imgstore_gc_report it never gains fields (a new function would come instead). */
typedef struct imgstore_disk_usage {
  uint64_t images;
  uint64_t blobs;
  uint64_t blob_bytes;
  uint64_t reclaimable_blobs;
  uint64_t reclaimable_bytes;
  uint64_t layers;      /* unpacked layers in the layer cache */
  uint64_t layer_bytes; /* their unpacked size */
  uint64_t reclaimable_layers;
  uint64_t reclaimable_layer_bytes;
} imgstore_disk_usage;

imgstore_code imgstore_df(imgstore_store* store, imgstore_disk_usage* out, imgstore_error** err);
/* The downloads kept for a later pull to resume (a pull from a registry that broke or was
 * killed): how many and their bytes, which imgstore_gc removes unless a pull is resuming them.
 * Either out-parameter may be NULL. */
imgstore_code imgstore_df_partial_downloads(imgstore_store* store, uint64_t* count, uint64_t* bytes,
                                            imgstore_error** err);

/* The id ("sha256:...") of `image` (name, id, unique id prefix or manifest digest), which the
 * caller frees with imgstore_string_free: to act on one image while its names may move. */
imgstore_code imgstore_resolve(imgstore_store* store, const char* image, char** image_id,
                               imgstore_error** err);

/* --- Registry login ------------------------------------------------------------------------- */

/* Checks username/password against `registry` ("HOST[:PORT]" or "HOST[:PORT]/NAMESPACE") and,
 * when it accepts them, stores them in the auth file that pulls and pushes read: the options'
 * auth file, else $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json or
 * ~/.config/containers/auth.json. options (may be NULL): auth file, cert dir, TLS verification;
 * its credentials are ignored. No message quotes the password. */
imgstore_code imgstore_login(const char* registry, const char* username, const char* password,
                             const imgstore_copy_options* options, imgstore_error** err);
/* Removes the credentials of `registry` (NULL: of every registry) from auth_file (NULL: the
 * default, as for imgstore_login). IMGSTORE_ERR_NOT_FOUND when there were none for registry. */
imgstore_code imgstore_logout(const char* registry, const char* auth_file, imgstore_error** err);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* IMGSTORE_IMGSTORE_H_ */
