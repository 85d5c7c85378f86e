// bench_list_images STORE...: the in-process parts of `imgstore list` on stores that
// bench_populate_store filled (bench/list_images.sh passes its cached ones): Store::Open of an
// existing store, and Store::ListImages (one read snapshot of every image and name). Set against
// the whole-process figures of list_images.sh, they show what process start and output cost.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "store/store.h"

namespace imgstore {
namespace {

void BM_Open(benchmark::State& state, const std::string& root) {
  for (auto _ : state) {
    Result<std::unique_ptr<store::Store>> s = store::Store::Open(root);
    if (!s.ok()) {
      state.SkipWithError(s.status().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(s->get());
  }
}

void BM_ListImages(benchmark::State& state, const std::string& root) {
  Result<std::unique_ptr<store::Store>> s = store::Store::Open(root);
  if (!s.ok()) {
    state.SkipWithError(s.status().ToString().c_str());
    return;
  }
  size_t images = 0;
  for (auto _ : state) {
    Result<std::vector<store::ImageSummary>> list = (*s)->ListImages();
    if (!list.ok()) {
      state.SkipWithError(list.status().ToString().c_str());
      return;
    }
    images = list->size();
  }
  state.counters["images"] = static_cast<double>(images);
}

}  // namespace
}  // namespace imgstore

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s [benchmark flags] STORE...\n", argv[0]);
    return 2;
  }
  for (int i = 1; i < argc; ++i) {
    const std::string root = argv[i];
    benchmark::RegisterBenchmark(("Open/" + root).c_str(), imgstore::BM_Open, root)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("ListImages/" + root).c_str(), imgstore::BM_ListImages, root)
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
