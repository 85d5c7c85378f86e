/* Tests of the C ABI (include/imgstore/imgstore.h), written in C and linked with libimgstore.so
 * as an embedder would: every function's error paths (NULL handles and arguments, bad
 * references, missing images) return the right code and a message naming what failed, and the
 * happy path works on small OCI layouts that api_make_layout (argv[1]) writes. Run under
 * valgrind by the ctest api_c_abi_valgrind: every handle, string and error is freed.
 *
 * Usage: api_c_abi_test PATH_OF_api_make_layout */
#define _GNU_SOURCE
#include <imgstore/imgstore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures = 0;
static int checks = 0;

#define EXPECT(cond)                                                      \
  do {                                                                    \
    ++checks;                                                             \
    if (!(cond)) {                                                        \
      ++failures;                                                         \
      fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
    }                                                                     \
  } while (0)

/* Runs CALL (whose last argument is &e), expects code CODE and a message containing SUBSTR. */
#define EXPECT_ERR(CODE, SUBSTR, CALL)                                                        \
  do {                                                                                        \
    imgstore_error* e = NULL;                                                                 \
    imgstore_code rc_ = (CALL);                                                               \
    ++checks;                                                                                 \
    if (rc_ != (CODE) || imgstore_error_code(e) != (CODE) ||                                  \
        strstr(imgstore_error_message(e), (SUBSTR)) == NULL) {                                \
      ++failures;                                                                             \
      fprintf(stderr, "%s:%d: %s: expected %s with \"%s\", got %s: %s\n", __FILE__, __LINE__, \
              #CALL, imgstore_code_name(CODE), SUBSTR, imgstore_code_name(rc_),               \
              imgstore_error_message(e));                                                     \
    }                                                                                         \
    imgstore_error_free(e);                                                                   \
  } while (0)

/* Runs CALL (whose last argument is &e) and expects success. */
#define EXPECT_OK(CALL)                                                        \
  do {                                                                         \
    imgstore_error* e = NULL;                                                  \
    imgstore_code rc_ = (CALL);                                                \
    ++checks;                                                                  \
    if (rc_ != IMGSTORE_OK || e != NULL) {                                     \
      ++failures;                                                              \
      fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__, __LINE__, #CALL, \
              imgstore_code_name(rc_), imgstore_error_message(e));             \
    }                                                                          \
    imgstore_error_free(e);                                                    \
  } while (0)

static char tmp[256];

static void make_layout(const char* helper, const char* dir, int seed) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "'%s' '%s' %d > /dev/null", helper, dir, seed);
  if (system(cmd) != 0) {
    fprintf(stderr, "cannot write the test layout %s\n", dir);
    exit(1);
  }
}

struct progress_count {
  int calls;
  int finished;
};

static void on_progress(void* user, const char* digest, uint64_t done, uint64_t total,
                        int skipped) {
  struct progress_count* c = user;
  ++c->calls;
  if (strncmp(digest, "sha256:", 7) == 0 && (done == total || skipped)) ++c->finished;
}

static void test_library(void) {
  EXPECT(strcmp(imgstore_version(), "0.1.0") == 0);
  EXPECT(strcmp(imgstore_code_name(IMGSTORE_ERR_NOT_FOUND), "not found") == 0);
  EXPECT(strcmp(imgstore_code_name(IMGSTORE_ERR_CANCELLED), "cancelled") == 0);
  EXPECT(strcmp(imgstore_code_name((imgstore_code)99), "unknown") == 0);
  EXPECT(imgstore_error_code(NULL) == IMGSTORE_OK);
  EXPECT(strcmp(imgstore_error_message(NULL), "") == 0);
  imgstore_error_free(NULL);
  imgstore_string_free(NULL);
  imgstore_store_close(NULL);
  imgstore_image_free(NULL);
  imgstore_image_list_free(NULL);
  imgstore_check_report_free(NULL);
  imgstore_lock_list_free(NULL);
  imgstore_copy_options_free(NULL);
  imgstore_cancel_token_free(NULL);
}

static void test_cancel_token(void) {
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_cancel_token_cancel: token is NULL",
             imgstore_cancel_token_cancel(NULL, &e));
  EXPECT(imgstore_cancel_token_is_cancelled(NULL) == 0);
  imgstore_cancel_token* t = imgstore_cancel_token_new();
  EXPECT(t != NULL);
  EXPECT(imgstore_cancel_token_is_cancelled(t) == 0);
  EXPECT_OK(imgstore_cancel_token_cancel(t, &e));
  EXPECT_OK(imgstore_cancel_token_cancel(t, &e));
  EXPECT(imgstore_cancel_token_is_cancelled(t) == 1);
  imgstore_cancel_token_free(t);
}

static void test_options(void) {
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_copy_options_set_platform: options is NULL",
             imgstore_copy_options_set_platform(NULL, "linux/amd64", &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "options is NULL",
             imgstore_copy_options_add_name(NULL, "a", &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "options is NULL",
             imgstore_copy_options_set_max_parallel(NULL, 2, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "options is NULL",
             imgstore_copy_options_set_credentials(NULL, "u:p", &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "options is NULL",
             imgstore_copy_options_set_auth_file(NULL, "/x", &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "options is NULL",
             imgstore_copy_options_set_cert_dir(NULL, "/x", &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "options is NULL",
             imgstore_copy_options_set_tls_verify(NULL, 0, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "options is NULL",
             imgstore_copy_options_set_progress(NULL, on_progress, NULL, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "options is NULL",
             imgstore_copy_options_set_cancel(NULL, NULL, &e));
  imgstore_copy_options* o = imgstore_copy_options_new();
  EXPECT(o != NULL);
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_copy_options_add_name: name is NULL",
             imgstore_copy_options_add_name(o, NULL, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "0 is not in 1..64",
             imgstore_copy_options_set_max_parallel(o, 0, &e));
  EXPECT_OK(imgstore_copy_options_set_max_parallel(o, 4, &e));
  EXPECT_OK(imgstore_copy_options_set_tls_verify(o, 1, &e));
  EXPECT_OK(imgstore_copy_options_set_credentials(o, NULL, &e));
  EXPECT_OK(imgstore_copy_options_set_auth_file(o, NULL, &e));
  EXPECT_OK(imgstore_copy_options_set_cert_dir(o, NULL, &e));
  /* A NULL err still gets the code. */
  EXPECT(imgstore_copy_options_set_max_parallel(o, 65, NULL) == IMGSTORE_ERR_INVALID_ARGUMENT);
  imgstore_copy_options_free(o);
}

static void test_open(void) {
  imgstore_store* s = NULL;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_store_open: out is NULL",
             imgstore_store_open(tmp, 0, NULL, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "negative lock timeout",
             imgstore_store_open(tmp, -1, &s, &e));
  EXPECT(s == NULL);
  /* A root below a regular file cannot be made. */
  char file[512], root[600];
  snprintf(file, sizeof file, "%s/plain-file", tmp);
  FILE* f = fopen(file, "w");
  EXPECT(f != NULL);
  if (f != NULL) fclose(f);
  snprintf(root, sizeof root, "%s/store", file);
  imgstore_error* e = NULL;
  EXPECT(imgstore_store_open(root, 0, &s, &e) != IMGSTORE_OK);
  EXPECT(s == NULL);
  EXPECT(strstr(imgstore_error_message(e), "plain-file") != NULL);
  imgstore_error_free(e);
  EXPECT(imgstore_store_root(NULL) == NULL);
}

/* imgstore_store_open_with_limits: a bad list is refused naming the item; a bound set there
 * stops a pull it guards with an error naming it; NULL and "" are the defaults. */
static void test_limits(const char* helper) {
  char root[512], layout[512], source[600];
  snprintf(root, sizeof root, "%s/limited", tmp);
  snprintf(layout, sizeof layout, "%s/limits-layout", tmp);
  make_layout(helper, layout, 3);
  snprintf(source, sizeof source, "oci:%s:v1", layout);
  imgstore_store* s = NULL;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "unknown limit \"max_bogus\"",
             imgstore_store_open_with_limits(root, 0, "max_ratio=0,max_bogus=1", &s, &e));
  EXPECT(s == NULL);
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "limit max_tar_bytes: unknown unit",
             imgstore_store_open_with_limits(root, 0, "max_tar_bytes=3X", &s, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "expected NAME=VALUE",
             imgstore_store_open_with_limits(root, 0, "max_tar_bytes", &s, &e));
  EXPECT(s == NULL);

  EXPECT_OK(imgstore_store_open_with_limits(root, 0, "max_ratio=0,max_manifest_bytes=100", &s, &e));
  if (s == NULL) return;
  char* id = NULL;
  EXPECT_ERR(IMGSTORE_ERR_CORRUPTION, "raise the limit max_manifest_bytes",
             imgstore_pull(s, source, NULL, &id, &e));
  EXPECT(id == NULL);
  imgstore_store_close(s);
  s = NULL;

  EXPECT_OK(imgstore_store_open_with_limits(root, 0, "", &s, &e));
  if (s == NULL) return;
  EXPECT_OK(imgstore_pull(s, source, NULL, &id, &e));
  imgstore_string_free(id);
  imgstore_store_close(s);
  s = NULL;
  EXPECT_OK(imgstore_store_open_with_limits(root, 0, NULL, &s, &e));
  imgstore_store_close(s);
}

/* Every store function with a NULL store (and the NULL out-parameters). */
static void test_null_store(void) {
  imgstore_image_list* list = NULL;
  imgstore_image* image = NULL;
  imgstore_check_report* report = NULL;
  imgstore_lock_list* locks = NULL;
  const char* names[] = {"a"};
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_pull: store is NULL",
             imgstore_pull(NULL, "oci:/x", NULL, NULL, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_push: store is NULL",
             imgstore_push(NULL, "a", "oci:/x", NULL, NULL, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_list: store is NULL",
             imgstore_list(NULL, NULL, &list, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_inspect: store is NULL",
             imgstore_inspect(NULL, "a", &image, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_tag: store is NULL",
             imgstore_tag(NULL, "a", "b", &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_untag: store is NULL",
             imgstore_untag(NULL, "a", names, 1, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_remove: store is NULL",
             imgstore_remove(NULL, "a", 0, NULL, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_gc: store is NULL",
             imgstore_gc(NULL, 0, NULL, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_check: store is NULL",
             imgstore_check(NULL, 0, 0, &report, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_locks: store is NULL",
             imgstore_locks(NULL, 0, &locks, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_unpack: store is NULL",
             imgstore_unpack(NULL, "a", "/tmp/x", NULL, &e));
  imgstore_mount_info* mount = NULL;
  imgstore_mount_list* mounts = NULL;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_mount: store is NULL",
             imgstore_mount(NULL, "a", NULL, NULL, NULL, &mount, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_umount: store is NULL",
             imgstore_umount(NULL, "a", &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_mounts: store is NULL",
             imgstore_mounts(NULL, &mounts, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_commit: store is NULL",
             imgstore_commit(NULL, "a", NULL, NULL, NULL, &e));
  EXPECT(mount == NULL && mounts == NULL);
  EXPECT(imgstore_mount_info_name(NULL) == NULL);
  EXPECT(imgstore_mount_list_count(NULL) == 0);
  EXPECT(imgstore_mount_list_at(NULL, 0) == NULL);
  imgstore_mount_info_free(NULL);
  imgstore_mount_list_free(NULL);
  EXPECT(list == NULL && image == NULL && report == NULL && locks == NULL);
  /* Accessors of NULL handles. */
  EXPECT(imgstore_image_list_count(NULL) == 0);
  EXPECT(imgstore_image_list_at(NULL, 0) == NULL);
  EXPECT(imgstore_image_id(NULL) == NULL);
  EXPECT(imgstore_image_name_count(NULL) == 0);
  EXPECT(imgstore_image_name(NULL, 0) == NULL);
  EXPECT(imgstore_image_size(NULL) == 0);
  EXPECT(imgstore_image_manifest(NULL) == NULL);
  EXPECT(imgstore_image_layer_count(NULL) == 0);
  EXPECT(imgstore_image_layer_digest(NULL, 0) == NULL);
  EXPECT(imgstore_check_report_clean(NULL) == 1);
  EXPECT(imgstore_check_report_count(NULL) == 0);
  EXPECT(imgstore_check_report_kind(NULL, 0) == NULL);
  EXPECT(imgstore_lock_list_count(NULL) == 0);
  EXPECT(imgstore_lock_list_name(NULL, 0) == NULL);
  EXPECT(imgstore_lock_list_pid(NULL, 0) == 0);
}

/* The operations on a real store: happy paths and the errors of bad input. */
static void test_store(const char* helper) {
  char root[512], layout[512], layout2[512], source[600], source2[600], out[600], dest[700];
  snprintf(root, sizeof root, "%s/root", tmp);
  snprintf(layout, sizeof layout, "%s/layout", tmp);
  snprintf(layout2, sizeof layout2, "%s/layout2", tmp);
  snprintf(out, sizeof out, "%s/pushed", tmp);
  make_layout(helper, layout, 1);
  make_layout(helper, layout2, 2);
  snprintf(source, sizeof source, "oci:%s:v1", layout);
  snprintf(source2, sizeof source2, "oci:%s:v1", layout2);
  snprintf(dest, sizeof dest, "oci:%s:copy", out);

  struct stat st;
  imgstore_store* s = NULL;
  EXPECT_OK(imgstore_store_open(root, 5000, &s, &e));
  if (s == NULL) return;
  EXPECT(strcmp(imgstore_store_root(s), root) == 0);

  /* pull: bad input. */
  char* id = NULL;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_pull: source is NULL",
             imgstore_pull(s, NULL, NULL, &id, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "bogus:/path",
             imgstore_pull(s, "bogus:/path", NULL, &id, &e));
  EXPECT_ERR(IMGSTORE_ERR_NOT_FOUND, "/no/such/layout",
             imgstore_pull(s, "oci:/no/such/layout:v1", NULL, &id, &e));
  imgstore_copy_options* o = imgstore_copy_options_new();
  EXPECT_OK(imgstore_copy_options_set_platform(o, "not a platform", &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "platform", imgstore_pull(s, source, o, &id, &e));
  EXPECT_OK(imgstore_copy_options_set_platform(o, NULL, &e));
  EXPECT_OK(imgstore_copy_options_add_name(o, "Bad Name!", &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "Bad Name!", imgstore_pull(s, source, o, &id, &e));
  imgstore_copy_options_free(o);
  /* A token cancelled before the call: nothing happens. */
  o = imgstore_copy_options_new();
  imgstore_cancel_token* token = imgstore_cancel_token_new();
  EXPECT_OK(imgstore_cancel_token_cancel(token, &e));
  EXPECT_OK(imgstore_copy_options_set_cancel(o, token, &e));
  imgstore_cancel_token_free(token); /* the options keep their own reference */
  EXPECT_ERR(IMGSTORE_ERR_CANCELLED, "pull cancelled", imgstore_pull(s, source, o, &id, &e));
  imgstore_copy_options_free(o);
  EXPECT(id == NULL);

  /* pull: the happy path, with progress and names. */
  struct progress_count progress = {0, 0};
  o = imgstore_copy_options_new();
  EXPECT_OK(imgstore_copy_options_add_name(o, "example.com/app:1", &e));
  EXPECT_OK(imgstore_copy_options_set_progress(o, on_progress, &progress, &e));
  EXPECT_OK(imgstore_pull(s, source, o, &id, &e));
  imgstore_copy_options_free(o);
  EXPECT(id != NULL && strncmp(id, "sha256:", 7) == 0 && strlen(id) == 71);
  EXPECT(progress.calls > 0);
  EXPECT(progress.finished >= 3); /* the config and two layers */
  char* id2 = NULL;
  EXPECT_OK(imgstore_pull(s, source2, NULL, &id2, &e));
  EXPECT(id2 != NULL && id != NULL && strcmp(id, id2) != 0);

  /* list */
  imgstore_image_list* list = NULL;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_list: out is NULL",
             imgstore_list(s, NULL, NULL, &e));
  EXPECT_OK(imgstore_list(s, NULL, &list, &e));
  EXPECT(imgstore_image_list_count(list) == 2);
  EXPECT(imgstore_image_list_at(list, 2) == NULL);
  imgstore_image_list_free(list);
  list = NULL;
  EXPECT_OK(imgstore_list(s, "example.com/app:1", &list, &e));
  EXPECT(imgstore_image_list_count(list) == 1);
  const imgstore_image* first = imgstore_image_list_at(list, 0);
  EXPECT(first != NULL && id != NULL && strcmp(imgstore_image_id(first), id) == 0);
  EXPECT(imgstore_image_name_count(first) == 1);
  EXPECT(first != NULL && strcmp(imgstore_image_name(first, 0), "example.com/app:1") == 0);
  EXPECT(imgstore_image_name(first, 1) == NULL);
  EXPECT(imgstore_image_size(first) > 8192);
  EXPECT(first != NULL && strcmp(imgstore_image_os(first), "linux") == 0);
  EXPECT(first != NULL && strcmp(imgstore_image_architecture(first), "amd64") == 0);
  EXPECT(first != NULL && strcmp(imgstore_image_created(first), "2024-01-02T03:04:05Z") == 0);
  EXPECT(imgstore_image_manifest(first) == NULL); /* only from inspect */
  imgstore_image_list_free(list);
  list = NULL;
  EXPECT_OK(imgstore_list(s, "example.com/other", &list, &e));
  EXPECT(imgstore_image_list_count(list) == 0);
  imgstore_image_list_free(list);
  list = NULL;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "", imgstore_list(s, "Bad Filter!", &list, &e));
  EXPECT(list == NULL);

  /* inspect */
  imgstore_image* image = NULL;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_inspect: image is NULL",
             imgstore_inspect(s, NULL, &image, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_inspect: out is NULL",
             imgstore_inspect(s, "x", NULL, &e));
  EXPECT_ERR(IMGSTORE_ERR_NOT_FOUND, "nosuch/image",
             imgstore_inspect(s, "nosuch/image", &image, &e));
  EXPECT(image == NULL);
  EXPECT_OK(imgstore_inspect(s, "example.com/app:1", &image, &e));
  EXPECT(imgstore_image_layer_count(image) == 2);
  EXPECT(imgstore_image_layer_digest(image, 1) != NULL);
  EXPECT(imgstore_image_layer_digest(image, 2) == NULL);
  EXPECT(imgstore_image_layer_diff_id(image, 0) != NULL &&
         strncmp(imgstore_image_layer_diff_id(image, 0), "sha256:", 7) == 0);
  EXPECT(imgstore_image_layer_size(image, 0) > 0);
  EXPECT(imgstore_image_manifest(image) != NULL &&
         strstr(imgstore_image_manifest(image), "\"layers\"") != NULL);
  EXPECT(imgstore_image_config(image) != NULL &&
         strstr(imgstore_image_config(image), "diff_ids") != NULL);

  /* push to an OCI layout; the manifest digest is the stored one. */
  char* digest = NULL;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_push: image is NULL",
             imgstore_push(s, NULL, dest, NULL, &digest, &e));
  EXPECT_ERR(IMGSTORE_ERR_NOT_FOUND, "nosuch/image",
             imgstore_push(s, "nosuch/image", dest, NULL, &digest, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "registry reference",
             imgstore_push(s, id == NULL ? "x" : id, NULL, NULL, &digest, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "bogus:/path",
             imgstore_push(s, "example.com/app:1", "bogus:/path", NULL, &digest, &e));
  EXPECT(digest == NULL);
  EXPECT_OK(imgstore_push(s, "example.com/app:1", dest, NULL, &digest, &e));
  EXPECT(digest != NULL && strcmp(digest, imgstore_image_manifest_digest(image)) == 0);
  char index[700];
  snprintf(index, sizeof index, "%s/index.json", out);
  EXPECT(stat(index, &st) == 0);
  imgstore_string_free(digest);
  imgstore_image_free(image);

  /* unpack and mount */
  char rootfs[600], file1[700];
  snprintf(rootfs, sizeof rootfs, "%s/rootfs", tmp);
  snprintf(file1, sizeof file1, "%s/rootfs/file-1", tmp);
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_unpack: dir is NULL",
             imgstore_unpack(s, "example.com/app:1", NULL, NULL, &e));
  EXPECT_ERR(IMGSTORE_ERR_NOT_FOUND, "nosuch/image",
             imgstore_unpack(s, "nosuch/image", rootfs, NULL, &e));
  imgstore_cancel_token* stop = imgstore_cancel_token_new();
  EXPECT_OK(imgstore_cancel_token_cancel(stop, &e));
  EXPECT_ERR(IMGSTORE_ERR_CANCELLED, "cancelled",
             imgstore_unpack(s, "example.com/app:1", rootfs, stop, &e));
  imgstore_cancel_token_free(stop);
  EXPECT_OK(imgstore_unpack(s, "example.com/app:1", rootfs, NULL, &e));
  EXPECT(stat(file1, &st) == 0);
  EXPECT_ERR(IMGSTORE_ERR_ALREADY_EXISTS, "rootfs",
             imgstore_unpack(s, "example.com/app:1", rootfs, NULL, &e));

  imgstore_mount_info* mount = NULL;
  imgstore_mount_list* mounts = NULL;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_mount: out is NULL",
             imgstore_mount(s, "example.com/app:1", NULL, NULL, NULL, NULL, &e));
  EXPECT_ERR(IMGSTORE_ERR_NOT_FOUND, "nosuch/image",
             imgstore_mount(s, "nosuch/image", NULL, NULL, NULL, &mount, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "",
             imgstore_mount(s, "example.com/app:1", "Bad Name!", NULL, NULL, &mount, &e));
  EXPECT(mount == NULL);
  EXPECT_OK(imgstore_mount(s, "example.com/app:1", "c1", "copy", NULL, &mount, &e));
  EXPECT(mount != NULL && strcmp(imgstore_mount_info_name(mount), "c1") == 0);
  EXPECT(mount != NULL && strcmp(imgstore_mount_info_kind(mount), "copy") == 0);
  EXPECT(mount != NULL && id != NULL && strcmp(imgstore_mount_info_image_id(mount), id) == 0);
  char mounted_file[900], mount_path[700];
  snprintf(mount_path, sizeof mount_path, "%s",
           mount == NULL ? "/nonexistent" : imgstore_mount_info_path(mount));
  snprintf(mounted_file, sizeof mounted_file, "%s/file-0", mount_path);
  EXPECT(stat(mounted_file, &st) == 0);
  imgstore_mount_info_free(mount);
  mount = NULL;
  EXPECT_ERR(IMGSTORE_ERR_ALREADY_EXISTS, "c1",
             imgstore_mount(s, "example.com/app:1", "c1", "copy", NULL, &mount, &e));
  EXPECT_OK(imgstore_mounts(s, &mounts, &e));
  EXPECT(imgstore_mount_list_count(mounts) == 1);
  EXPECT(imgstore_mount_list_at(mounts, 0) != NULL &&
         strcmp(imgstore_mount_info_name(imgstore_mount_list_at(mounts, 0)), "c1") == 0);
  EXPECT(imgstore_mount_list_at(mounts, 1) == NULL);
  imgstore_mount_list_free(mounts);
  /* commit: the mount's changes become a new image */
  char added[900];
  snprintf(added, sizeof added, "%s/added-by-c", mount_path);
  FILE* changed = fopen(added, "w");
  EXPECT(changed != NULL);
  if (changed != NULL) {
    fputs("hello\n", changed);
    fclose(changed);
  }
  char* committed = NULL;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_commit: source is NULL",
             imgstore_commit(s, NULL, NULL, NULL, &committed, &e));
  EXPECT_ERR(IMGSTORE_ERR_NOT_FOUND, "nosuch-mount",
             imgstore_commit(s, "nosuch-mount", NULL, NULL, &committed, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "Bad Name!",
             imgstore_commit(s, "c1", NULL, "Bad Name!", &committed, &e));
  EXPECT(committed == NULL);
  EXPECT_OK(imgstore_commit(s, "c1", NULL, "example.com/committed:1", &committed, &e));
  EXPECT(committed != NULL && id != NULL && strcmp(committed, id) != 0);
  imgstore_image* child = NULL;
  EXPECT_OK(imgstore_inspect(s, "example.com/committed:1", &child, &e));
  EXPECT(imgstore_image_layer_count(child) == 3);
  imgstore_image_free(child);
  imgstore_string_free(committed);
  int gone = 0;
  EXPECT_OK(imgstore_remove(s, "example.com/committed:1", 0, &gone, &e));
  EXPECT(gone == 1);

  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_umount: name_or_path is NULL",
             imgstore_umount(s, NULL, &e));
  EXPECT_ERR(IMGSTORE_ERR_NOT_FOUND, "nosuch", imgstore_umount(s, "nosuch", &e));
  EXPECT_OK(imgstore_umount(s, "c1", &e));
  mounts = NULL;
  EXPECT_OK(imgstore_mounts(s, &mounts, &e));
  EXPECT(imgstore_mount_list_count(mounts) == 0);
  imgstore_mount_list_free(mounts);

  /* tag, untag */
  const char* bad[] = {"example.com/not-a-name:1"};
  const char* some[] = {"example.com/app:2"};
  const char* with_null[] = {NULL};
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_tag: name is NULL",
             imgstore_tag(s, "example.com/app:1", NULL, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_tag: image is NULL",
             imgstore_tag(s, NULL, "a", &e));
  EXPECT_ERR(IMGSTORE_ERR_NOT_FOUND, "nosuch/image", imgstore_tag(s, "nosuch/image", "a", &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "Bad Name!",
             imgstore_tag(s, "example.com/app:1", "Bad Name!", &e));
  EXPECT_OK(imgstore_tag(s, "example.com/app:1", "example.com/app:2", &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_untag: names is NULL",
             imgstore_untag(s, "example.com/app:1", NULL, 1, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_untag: a name is NULL",
             imgstore_untag(s, "example.com/app:1", with_null, 1, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_untag: image is NULL",
             imgstore_untag(s, NULL, some, 1, &e));
  EXPECT_ERR(IMGSTORE_ERR_NOT_FOUND, "not-a-name",
             imgstore_untag(s, "example.com/app:1", bad, 1, &e));
  EXPECT_ERR(IMGSTORE_ERR_NOT_FOUND, "nosuch/image",
             imgstore_untag(s, "nosuch/image", some, 1, &e));
  EXPECT_OK(imgstore_untag(s, "example.com/app:1", some, 1, &e));
  EXPECT_OK(imgstore_tag(s, "example.com/app:1", "example.com/app:3", &e));

  /* remove: by id with two names needs force. */
  int deleted = -1;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_remove: image is NULL",
             imgstore_remove(s, NULL, 0, &deleted, &e));
  EXPECT_ERR(IMGSTORE_ERR_NOT_FOUND, "nosuch/image",
             imgstore_remove(s, "nosuch/image", 0, &deleted, &e));
  EXPECT_ERR(IMGSTORE_ERR_FAILED_PRECONDITION, "",
             imgstore_remove(s, id == NULL ? "x" : id, 0, &deleted, &e));
  EXPECT(deleted == -1);
  EXPECT_OK(imgstore_remove(s, "example.com/app:3", 0, &deleted, &e));
  EXPECT(deleted == 0); /* one name is left */
  EXPECT_OK(imgstore_remove(s, id == NULL ? "x" : id, 0, &deleted, &e));
  EXPECT(deleted == 1);

  /* gc takes the removed image's blobs; check is clean; locks answer. */
  imgstore_gc_report gc;
  memset(&gc, 0, sizeof gc);
  EXPECT_OK(imgstore_gc(s, 1, &gc, &e));
  /* Both images are gone: at least the first one's manifest, config and two layers go (the
   * committed image's blobs too), the same in the dry run as for real, and then nothing is left. */
  EXPECT(gc.blobs_removed >= 4);
  uint64_t dry_run_blobs = gc.blobs_removed;
  EXPECT_OK(imgstore_gc(s, 0, &gc, &e));
  EXPECT(gc.blobs_removed == dry_run_blobs && gc.bytes_removed > 8192);
  EXPECT_OK(imgstore_gc(s, 0, NULL, &e));
  EXPECT_OK(imgstore_gc(s, 1, &gc, &e));
  EXPECT(gc.blobs_removed == 0);
  imgstore_check_report* report = NULL;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_check: out is NULL",
             imgstore_check(s, 1, 0, NULL, &e));
  EXPECT_OK(imgstore_check(s, 1, 0, &report, &e));
  EXPECT(imgstore_check_report_clean(report) == 1);
  EXPECT(imgstore_check_report_count(report) == 0);
  EXPECT(imgstore_check_report_message(report, 0) == NULL);
  imgstore_check_report_free(report);
  /* A file in blobs/ that no row knows: check names it, repair removes it. */
  char orphan[700];
  snprintf(orphan, sizeof orphan, "%s/blobs/sha256/%064d", root, 0);
  FILE* f = fopen(orphan, "w");
  EXPECT(f != NULL);
  if (f != NULL) fclose(f);
  report = NULL;
  EXPECT_OK(imgstore_check(s, 0, 0, &report, &e));
  EXPECT(imgstore_check_report_clean(report) == 0);
  EXPECT(imgstore_check_report_count(report) == 1);
  EXPECT(imgstore_check_report_message(report, 0) != NULL);
  imgstore_check_report_free(report);
  report = NULL;
  EXPECT_OK(imgstore_check(s, 0, 1, &report, &e));
  EXPECT(imgstore_check_report_clean(report) == 1);
  imgstore_check_report_free(report);

  imgstore_lock_list* locks = NULL;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_locks: out is NULL",
             imgstore_locks(s, 1, NULL, &e));
  EXPECT_OK(imgstore_locks(s, 1, &locks, &e));
  size_t n = imgstore_lock_list_count(locks);
  for (size_t i = 0; i < n; ++i) {
    EXPECT(imgstore_lock_list_name(locks, i) != NULL);
    EXPECT(imgstore_lock_list_state(locks, i) != NULL);
    EXPECT(imgstore_lock_list_operation(locks, i) != NULL);
  }
  EXPECT(imgstore_lock_list_name(locks, n) == NULL);
  imgstore_lock_list_free(locks);

  imgstore_string_free(id);
  imgstore_string_free(id2);
  imgstore_store_close(s);
}

/* imgstore_df, imgstore_resolve, imgstore_login and imgstore_logout: the ABI additions the CLI's
 * move onto the public API brought (issue 6). */
static void test_df_resolve_login(const char* helper) {
  char root[512], layout[512], source[600], authfile[512];
  snprintf(root, sizeof root, "%s/root-df", tmp);
  snprintf(layout, sizeof layout, "%s/layout-df", tmp);
  snprintf(source, sizeof source, "oci:%s:v1", layout);
  snprintf(authfile, sizeof authfile, "%s/auth.json", tmp);
  make_layout(helper, layout, 3);

  imgstore_disk_usage du;
  char* id = NULL;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_df: store is NULL",
             imgstore_df(NULL, &du, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_resolve: store is NULL",
             imgstore_resolve(NULL, "x", &id, &e));
  imgstore_store* s = NULL;
  EXPECT_OK(imgstore_store_open(root, 5000, &s, &e));
  if (s == NULL) return;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_df: out is NULL", imgstore_df(s, NULL, &e));
  memset(&du, 0xff, sizeof du);
  EXPECT_OK(imgstore_df(s, &du, &e));
  EXPECT(du.images == 0 && du.blobs == 0 && du.blob_bytes == 0 && du.layers == 0);

  EXPECT_ERR(IMGSTORE_ERR_NOT_FOUND, "image not known: example.com/df:1",
             imgstore_resolve(s, "example.com/df:1", &id, &e));
  EXPECT(id == NULL);
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_resolve: image is NULL",
             imgstore_resolve(s, NULL, &id, &e));
  imgstore_copy_options* o = imgstore_copy_options_new();
  EXPECT_OK(imgstore_copy_options_add_name(o, "example.com/df:1", &e));
  char* pulled = NULL;
  EXPECT_OK(imgstore_pull(s, source, o, &pulled, &e));
  imgstore_copy_options_free(o);
  EXPECT_OK(imgstore_resolve(s, "example.com/df:1", &id, &e));
  EXPECT(id != NULL && pulled != NULL && strcmp(id, pulled) == 0);
  EXPECT_OK(imgstore_df(s, &du, &e));
  EXPECT(du.images == 1 && du.blobs >= 3 && du.blob_bytes > 0 && du.reclaimable_bytes == 0);
  int deleted = 0;
  EXPECT_OK(imgstore_remove(s, "example.com/df:1", 0, &deleted, &e));
  EXPECT_OK(imgstore_df(s, &du, &e));
  EXPECT(du.images == 0 && du.reclaimable_blobs == du.blobs && du.reclaimable_bytes > 0);

  /* A partial download (as a broken pull keeps one) is counted, and gc removes it. */
  uint64_t partials = 99, partial_bytes = 99;
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_df_partial_downloads: store is NULL",
             imgstore_df_partial_downloads(NULL, &partials, &partial_bytes, &e));
  EXPECT_OK(imgstore_df_partial_downloads(s, &partials, &partial_bytes, &e));
  EXPECT(partials == 0 && partial_bytes == 0);
  char partial[700];
  snprintf(partial, sizeof partial, "%s/ingest/sha256-%s.partial", root,
           "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  FILE* pf = fopen(partial, "w");
  EXPECT(pf != NULL);
  if (pf != NULL) {
    fputs("twelve bytes", pf);
    fclose(pf);
  }
  EXPECT_OK(imgstore_df_partial_downloads(s, &partials, NULL, &e));
  EXPECT(partials == 1);
  EXPECT_OK(imgstore_df_partial_downloads(s, NULL, &partial_bytes, &e));
  EXPECT(partial_bytes == 12);
  EXPECT_OK(imgstore_gc(s, 0, NULL, &e));
  EXPECT_OK(imgstore_df_partial_downloads(s, &partials, &partial_bytes, &e));
  EXPECT(partials == 0 && partial_bytes == 0);
  imgstore_string_free(id);
  imgstore_string_free(pulled);
  imgstore_store_close(s);

  /* login: its arguments are checked, and an unreachable registry fails naming it, with nothing
   * written to the auth file. */
  imgstore_copy_options* lo = imgstore_copy_options_new();
  EXPECT_OK(imgstore_copy_options_set_auth_file(lo, authfile, &e));
  EXPECT_OK(imgstore_copy_options_set_tls_verify(lo, 0, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_login: registry is NULL",
             imgstore_login(NULL, "u", "p", lo, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "imgstore_login: password is NULL",
             imgstore_login("127.0.0.1:1", "u", NULL, lo, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "invalid registry \"a b\"",
             imgstore_login("a b", "u", "p", lo, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "login: empty password",
             imgstore_login("127.0.0.1:1", "u", "", lo, &e));
  {
    imgstore_error* e = NULL;
    imgstore_code rc = imgstore_login("127.0.0.1:1", "u", "secret-pw", lo, &e);
    EXPECT(rc != IMGSTORE_OK);
    EXPECT(strstr(imgstore_error_message(e), "login 127.0.0.1:1") != NULL);
    EXPECT(strstr(imgstore_error_message(e), "secret-pw") == NULL);
    imgstore_error_free(e);
  }
  struct stat st;
  EXPECT(stat(authfile, &st) != 0);
  imgstore_copy_options_free(lo);

  /* logout: an entry is removed once; then it is not found. */
  FILE* f = fopen(authfile, "w");
  EXPECT(f != NULL);
  if (f != NULL) {
    fputs(
        "{\"auths\": {\"127.0.0.1:5000\": {\"auth\": \"dTpw\"}, "
        "\"example.com\": {\"auth\": \"dTpw\"}}}\n",
        f);
    fclose(f);
  }
  EXPECT_OK(imgstore_logout("127.0.0.1:5000", authfile, &e));
  EXPECT_ERR(IMGSTORE_ERR_NOT_FOUND, "not logged in to 127.0.0.1:5000",
             imgstore_logout("127.0.0.1:5000", authfile, &e));
  EXPECT_ERR(IMGSTORE_ERR_INVALID_ARGUMENT, "invalid registry",
             imgstore_logout("a b", authfile, &e));
  EXPECT_OK(imgstore_logout(NULL, authfile, &e));
  EXPECT_ERR(IMGSTORE_ERR_NOT_FOUND, "not logged in to example.com",
             imgstore_logout("example.com", authfile, &e));
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: api_c_abi_test PATH_OF_api_make_layout\n");
    return 2;
  }
  const char* base = getenv("TMPDIR");
  snprintf(tmp, sizeof tmp, "%s/imgstore-capi-XXXXXX", base != NULL && *base ? base : "/tmp");
  if (mkdtemp(tmp) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  test_library();
  test_cancel_token();
  test_options();
  test_open();
  test_limits(argv[1]);
  test_null_store();
  test_store(argv[1]);
  test_df_resolve_login(argv[1]);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmp);
  printf("%d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
