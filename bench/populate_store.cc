// bench_populate_store ROOT COUNT: fills a store with COUNT images through the store API, for the
// `imgstore list` benchmark (bench/list_images.sh) and for trying the CLI by hand.
//
// Image i has a distinct config (created i * 7 minutes before 2025-01-01, a label with i), two
// layers (a base shared by all images and one of its own, small blobs of arbitrary bytes: list
// never reads them) and 1.5 names on average: bench/repoR:vI, plus bench/repoR:altI when i is
// odd (R = i mod 50). Images already present are recorded again (only their names), so a run
// that was interrupted can be completed by running it again.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "images/media_types.h"
#include "store/store.h"

namespace imgstore {
namespace {

struct Blob {
  std::string bytes;
  Digest digest;
  std::string media_type;
};

Blob MakeBlob(std::string bytes, std::string_view media_type) {
  Digest d = Digest::Of(bytes);
  return Blob{std::move(bytes), std::move(d), std::string(media_type)};
}

std::string DescriptorJson(const Blob& b) {
  return R"({"mediaType":")" + b.media_type + R"(","digest":")" + b.digest.ToString() +
         R"(","size":)" + std::to_string(b.bytes.size()) + "}";
}

std::string CreatedText(int i) {
  using namespace std::chrono;
  const sys_seconds base = sys_days{year{2025} / January / 1};
  const sys_seconds t = base - minutes(7) * i;
  const sys_days day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<seconds> hms{t - day};
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

Status Ingest(store::Store& s, const Blob& b) {
  store::IngestOptions o;
  o.expected_size = b.bytes.size();
  o.media_type = b.media_type;
  o.operation = "populate";
  Result<store::IngestResult> r = s.IngestBlob(b.digest, o, b.bytes);
  return r.ok() ? Status::OK() : r.status();
}

Status AddOne(store::Store& s, const Blob& base, const Digest& base_diff, int i) {
  Blob layer = MakeBlob("layer of image " + std::to_string(i) + std::string(200, 'x'),
                        images::media_type::kOciLayerTarGzip);
  Digest diff = Digest::Of("tar of image " + std::to_string(i));
  Blob config = MakeBlob(R"({"architecture":"amd64","os":"linux","created":")" + CreatedText(i) +
                             R"(","config":{"Labels":{"bench.index":")" + std::to_string(i) +
                             R"("}},"rootfs":{"type":"layers","diff_ids":[")" +
                             base_diff.ToString() + R"(",")" + diff.ToString() + R"("]}})",
                         images::media_type::kOciConfig);
  std::string manifest = R"({"schemaVersion":2,"mediaType":")" +
                         std::string(images::media_type::kOciManifest) + R"(","config":)" +
                         DescriptorJson(config) + R"(,"layers":[)" + DescriptorJson(base) + "," +
                         DescriptorJson(layer) + "]}";
  IMGSTORE_RETURN_IF_ERROR(Ingest(s, layer));
  IMGSTORE_RETURN_IF_ERROR(Ingest(s, config));
  const std::string repo = "bench/repo" + std::to_string(i % 50);
  std::vector<std::string> names = {repo + ":v" + std::to_string(i)};
  if (i % 2 == 1) names.push_back(repo + ":alt" + std::to_string(i));
  Result<store::AddImageResult> r =
      s.AddImage(manifest, images::media_type::kOciManifest, config.bytes, names);
  return r.ok() ? Status::OK() : r.status();
}

int Main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s ROOT COUNT\n", argv[0]);
    return 2;
  }
  const std::string root = argv[1];
  const int count = std::atoi(argv[2]);
  Result<std::unique_ptr<store::Store>> s = store::Store::Open(root);
  if (!s.ok()) {
    std::fprintf(stderr, "populate: %s\n", s.status().ToString().c_str());
    return 1;
  }
  const Blob base =
      MakeBlob("shared base layer" + std::string(1000, 'b'), images::media_type::kOciLayerTarGzip);
  const Digest base_diff = Digest::Of("tar of the shared base layer");
  Status st = Ingest(**s, base);
  for (int i = 0; st.ok() && i < count; ++i) st = AddOne(**s, base, base_diff, i);
  if (!st.ok()) {
    std::fprintf(stderr, "populate: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace imgstore

int main(int argc, char** argv) { return imgstore::Main(argc, argv); }
