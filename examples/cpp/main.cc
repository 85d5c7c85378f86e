// A small embedder of imgstore's C++ API: opens a store, pulls an image with a progress line
// per blob, lists the store and inspects the image, and unpacks it when given a directory. A
// second thread lists the store while the pull runs: one Store handle serves every thread.
//
//   imgstore_example_cpp ROOT SOURCE [UNPACK_DIR]
//
// docs/embedding.md walks through it.
#include <cstdio>
#include <imgstore/store.hpp>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: %s ROOT SOURCE [UNPACK_DIR]\n", argv[0]);
    return 2;
  }
  std::printf("libimgstore %s\n", imgstore::Version());
  imgstore::Result<std::unique_ptr<imgstore::Store>> opened = imgstore::Store::Open(argv[1]);
  if (!opened.ok()) {
    std::fprintf(stderr, "example: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  imgstore::Store& store = **opened;

  imgstore::PullOptions options;
  options.names = {"example.com/imported-cpp:latest"};
  options.on_progress = [](const imgstore::Progress& p) {
    if (p.skipped || p.done == p.total) {
      std::printf("  %.19s %s\n", p.digest.c_str(), p.skipped ? "present" : "copied");
    }
  };
  imgstore::CancelToken cancel;  // cancel.Cancel() from any thread would stop the pull
  options.cancel = cancel;
  // Another thread may use the same handle meanwhile; list never waits for the pull.
  std::thread lister([&store] {
    imgstore::Result<std::vector<imgstore::ImageSummary>> images = store.List();
    if (!images.ok())
      std::fprintf(stderr, "example: list: %s\n", images.status().message().c_str());
  });
  imgstore::Result<imgstore::PullResult> pulled = store.Pull(argv[2], options);
  lister.join();
  if (!pulled.ok()) {
    std::fprintf(stderr, "example: %s\n", pulled.status().ToString().c_str());
    return 1;
  }
  std::printf("pulled %s (%d blobs written)\n", pulled->id.c_str(), pulled->blobs_written);

  imgstore::Result<std::vector<imgstore::ImageSummary>> images = store.List();
  if (!images.ok()) {
    std::fprintf(stderr, "example: %s\n", images.status().ToString().c_str());
    return 1;
  }
  for (const imgstore::ImageSummary& image : *images) {
    std::string names;
    for (const std::string& n : image.names) names += " " + n;
    std::printf("image %.19s %s/%s %llu bytes%s\n", image.id.c_str(), image.os.c_str(),
                image.architecture.c_str(), static_cast<unsigned long long>(image.size),
                names.c_str());
  }
  imgstore::Result<imgstore::ImageDetails> details = store.Inspect(pulled->id);
  if (!details.ok()) {
    std::fprintf(stderr, "example: %s\n", details.status().ToString().c_str());
    return 1;
  }
  for (const imgstore::LayerInfo& layer : details->layers) {
    std::printf("layer %s %llu bytes\n", layer.digest.c_str(),
                static_cast<unsigned long long>(layer.size));
  }
  if (argc == 4) {
    imgstore::Result<imgstore::UnpackResult> unpacked = store.Unpack(pulled->id, argv[3]);
    if (!unpacked.ok()) {
      std::fprintf(stderr, "example: %s\n", unpacked.status().ToString().c_str());
      return 1;
    }
    std::printf("unpacked into %s (%llu entries)\n", argv[3],
                static_cast<unsigned long long>(unpacked->entries));
  }
  return 0;
}
