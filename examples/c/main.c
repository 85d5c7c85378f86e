/* A small embedder of imgstore's C ABI: opens a store, pulls (imports) an image, lists the
 * store, inspects the image and, given a directory, unpacks its root filesystem there.
 *
 *   imgstore_example_c ROOT SOURCE [UNPACK_DIR]
 *   imgstore_example_c /tmp/store oci:/srv/layout:v1 /tmp/rootfs
 *
 * docs/embedding.md walks through it. */
#include <imgstore/imgstore.h>
#include <stdio.h>

/* Prints the error of a failed call and frees it. */
static int fail(const char* what, imgstore_error* err) {
  fprintf(stderr, "example: %s: %s (%s)\n", what, imgstore_error_message(err),
          imgstore_code_name(imgstore_error_code(err)));
  imgstore_error_free(err);
  return 1;
}

static void on_progress(void* user, const char* digest, uint64_t done, uint64_t total,
                        int skipped) {
  int* blobs = user;
  if (skipped || done == total) {
    ++*blobs;
    printf("  %.19s %s\n", digest, skipped ? "present" : "copied");
  }
}

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: %s ROOT SOURCE [UNPACK_DIR]\n", argv[0]);
    return 2;
  }
  imgstore_error* err = NULL;
  imgstore_store* store = NULL;
  int rc = 1;
  printf("libimgstore %s\n", imgstore_version());
  if (imgstore_store_open(argv[1], 0, &store, &err) != IMGSTORE_OK) return fail("open", err);

  imgstore_copy_options* options = imgstore_copy_options_new();
  int blobs = 0;
  char* id = NULL;
  if (options == NULL) goto out;
  if (imgstore_copy_options_add_name(options, "example.com/imported:latest", &err) != IMGSTORE_OK ||
      imgstore_copy_options_set_progress(options, on_progress, &blobs, &err) != IMGSTORE_OK) {
    fail("options", err);
    goto out;
  }
  printf("pulling %s\n", argv[2]);
  if (imgstore_pull(store, argv[2], options, &id, &err) != IMGSTORE_OK) {
    fail("pull", err);
    goto out;
  }
  printf("pulled %s (%d blobs)\n", id, blobs);

  imgstore_image_list* list = NULL;
  if (imgstore_list(store, NULL, &list, &err) != IMGSTORE_OK) {
    fail("list", err);
    goto out;
  }
  for (size_t i = 0; i < imgstore_image_list_count(list); ++i) {
    const imgstore_image* image = imgstore_image_list_at(list, i);
    printf("image %.19s %s/%s %llu bytes", imgstore_image_id(image), imgstore_image_os(image),
           imgstore_image_architecture(image), (unsigned long long)imgstore_image_size(image));
    for (size_t n = 0; n < imgstore_image_name_count(image); ++n) {
      printf(" %s", imgstore_image_name(image, n));
    }
    printf("\n");
  }
  imgstore_image_list_free(list);

  imgstore_image* details = NULL;
  if (imgstore_inspect(store, id, &details, &err) != IMGSTORE_OK) {
    fail("inspect", err);
    goto out;
  }
  for (size_t i = 0; i < imgstore_image_layer_count(details); ++i) {
    printf("layer %zu %s %llu bytes\n", i, imgstore_image_layer_digest(details, i),
           (unsigned long long)imgstore_image_layer_size(details, i));
  }
  imgstore_image_free(details);

  if (argc == 4) {
    if (imgstore_unpack(store, id, argv[3], NULL, &err) != IMGSTORE_OK) {
      fail("unpack", err);
      goto out;
    }
    printf("unpacked into %s\n", argv[3]);
  }
  rc = 0;
out:
  imgstore_string_free(id);
  imgstore_copy_options_free(options);
  imgstore_store_close(store);
  return rc;
}
