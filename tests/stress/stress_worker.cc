// One worker process of the multi-process stress test (store_stress_test.cc, docs/stress.md):
// until a deadline, it runs a seeded random mix of imgstore commands against the shared store,
// each as a process of its own, and appends every operation to its log (op_log.h) as it starts
// and as it ends. It judges nothing: the parent analyses the merged logs.
//
//   stress_worker PLAN_JSON WORKER SEED UNTIL_NS LOG
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/cli_runner.h"
#include "common/temp_dir.h"
#include "stress/op_log.h"

namespace imgstore::testing::stress {
namespace {

using nlohmann::json;

struct Plan {
  std::string root;
  std::string registry;              // 127.0.0.1:PORT
  std::vector<std::string> sources;  // pull specs prepared by the parent
  std::string work_dir;              // this worker's scratch directory
  std::chrono::milliseconds op_timeout{180'000};
};

struct ListedImage {
  std::string id;
  std::vector<std::string> names;  // familiar form
};

struct OwnMount {
  std::string name;
  std::string path;
  int64_t seen_ns = 0;
};

// docker's short form of a stored name, the form rmi's "Untagged:" and untag's errors use.
std::string Familiar(const std::string& name) {
  for (const char* prefix : {"docker.io/library/", "docker.io/"}) {
    std::string p = prefix;
    if (name.rfind(p, 0) == 0) return name.substr(p.size());
  }
  return name;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

class Worker {
 public:
  Worker(Plan plan, int index, uint64_t seed, int64_t until_ns, const std::string& log_path)
      : plan_(std::move(plan)), index_(index), rng_(seed), until_ns_(until_ns) {
    log_fd_ = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  }
  ~Worker() {
    if (log_fd_ >= 0) ::close(log_fd_);
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  bool ok() const { return log_fd_ >= 0; }

  void Run() {
    while (NowNs() < until_ns_) Step();
    // Leave no mount of ours behind: the parent's final checks expect none but crossed ones.
    std::vector<OwnMount> left = mounts_;
    for (const OwnMount& m : left) Umount(m);
  }

 private:
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool Chance(int percent) { return Pick(100) < percent; }

  // Writes one whole line with one write(2): the watchdog may read the file meanwhile.
  void Append(const std::string& line) {
    std::string l = line + "\n";
    if (::write(log_fd_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) {
      std::perror("stress_worker: write log");
      std::exit(3);
    }
  }

  OpRecord Begin(const std::string& kind, std::vector<std::string> args) {
    OpRecord r;
    r.worker = index_;
    r.seq = seq_++;
    r.kind = kind;
    r.args = std::move(args);
    r.start_ns = NowNs();
    Append(StartJsonLine(r));
    return r;
  }

  void End(OpRecord& r) {
    if (r.end_ns == 0) r.end_ns = NowNs();
    Append(ToJsonLine(r));
  }

  // Runs `imgstore --root ROOT args` as one logged operation; returns stdout (exit in r).
  std::string Imgstore(OpRecord& r) {
    CliResult c = RunImgstore(plan_.root, r.args, {}, plan_.op_timeout);
    r.end_ns = NowNs();
    r.exit_code = c.exit_code;
    r.err = c.err;
    return c.out;
  }

  std::string NewName() {
    if (Chance(40)) return "stress.test/shared:" + std::to_string(Pick(4));
    return "stress.test/w" + std::to_string(index_) + "/n" + std::to_string(Pick(6)) + ":latest";
  }

  const ListedImage* PickImage() {
    if (images_.empty() || Chance(10)) List();
    if (images_.empty()) return nullptr;
    return &images_[static_cast<size_t>(Pick(static_cast<int>(images_.size())))];
  }

  void Step() {
    static const std::vector<std::pair<int, void (Worker::*)()>> kOps = {
        {16, &Worker::ListAndInspect},
        {16, &Worker::Pull},
        {7, &Worker::Push},
        {8, &Worker::Tag},
        {5, &Worker::Untag},
        {7, &Worker::Rmi},
        {3, &Worker::Gc},
        {5, &Worker::Unpack},
        {5, &Worker::Mount},
        {5, &Worker::Commit},
        {5, &Worker::UmountOne},
    };
    int total = 0;
    for (const auto& op : kOps) total += op.first;
    int roll = Pick(total);
    for (const auto& [weight, fn] : kOps) {
      if (roll < weight) {
        (this->*fn)();
        return;
      }
      roll -= weight;
    }
  }

  // `list --format json`, remembered as the snapshot the next targets are picked from.
  void List() {
    OpRecord r = Begin("list", {"list", "--format", "json"});
    std::string out = Imgstore(r);
    End(r);
    if (r.exit_code != 0) return;
    OpRecord check = Begin("snapshot", {});
    json j = json::parse(out, nullptr, false);
    std::vector<ListedImage> images;
    std::string problem;
    if (!j.is_array()) {
      problem = "list --format json printed no JSON array: " + out.substr(0, 200);
    } else {
      for (const json& e : j) {
        if (!e.is_object() || !e.contains("id") || !e["id"].is_string() || !e.contains("names")) {
          problem = "list entry without id or names: " + e.dump();
          break;
        }
        ListedImage img;
        img.id = e["id"].get<std::string>();
        for (const json& n : e["names"]) img.names.push_back(Familiar(n.get<std::string>()));
        images.push_back(std::move(img));
      }
    }
    if (problem.empty()) {
      images_ = std::move(images);
      list_ns_ = r.start_ns;
    } else {
      check.exit_code = 1;
      check.err = problem;
    }
    End(check);
  }

  // list, then inspect some listed images and look for their blobs on disk: the snapshot must
  // name only images that exist whole (or that an rmi took away since).
  void ListAndInspect() {
    List();
    for (int i = 0; i < 2 && !images_.empty(); ++i) {
      const ListedImage img = images_[static_cast<size_t>(Pick(static_cast<int>(images_.size())))];
      OpRecord r = Begin("inspect", {"inspect", img.id});
      r.target_id = img.id;
      r.seen_ns = list_ns_;
      std::string out = Imgstore(r);
      End(r);
      if (r.exit_code != 0) continue;
      OpRecord b = Begin("blobs", {img.id});
      b.target_id = img.id;
      b.seen_ns = list_ns_;
      json j = json::parse(out, nullptr, false);
      std::vector<std::string> digests;
      if (!j.is_array() || j.size() != 1 || !j[0].is_object()) {
        b.exit_code = 1;
        b.err = "inspect printed no one-element array: " + out.substr(0, 200);
      } else {
        digests.push_back(j[0].value("id", ""));
        digests.push_back(j[0].value("digest", ""));
        if (j[0].contains("layers") && j[0]["layers"].is_array()) {
          for (const json& l : j[0]["layers"]) digests.push_back(l.value("digest", ""));
        }
      }
      for (const std::string& d : digests) {
        struct stat st;
        std::string path = plan_.root + "/blobs/sha256/" +
                           (d.rfind("sha256:", 0) == 0 ? d.substr(7) : std::string("<bad>" + d));
        if (b.exit_code == 0 && ::stat(path.c_str(), &st) != 0) {
          b.exit_code = 1;
          b.err = "blob " + d + " of image " + img.id + " is missing (" + path + ")";
        }
      }
      End(b);
    }
  }

  void Pull() {
    std::vector<std::string> sources = plan_.sources;
    sources.insert(sources.end(), pushed_.begin(), pushed_.end());
    std::string src = sources[static_cast<size_t>(Pick(static_cast<int>(sources.size())))];
    std::vector<std::string> args = {"pull", "-q", src};
    std::string name;
    if (Chance(50)) {
      name = NewName();
      args.insert(args.end(), {"--name", name});
    }
    OpRecord r = Begin("pull", args);
    Imgstore(r);
    if (r.exit_code == 0) {
      if (!name.empty()) r.changed_names.push_back(name);
      // A registry pull names the image by its reference (the file transports here carry no
      // names), and a worker's re-pushed tag names another image each time.
      if (src.rfind("oci:", 0) != 0 && src.rfind("docker-archive:", 0) != 0) {
        r.changed_names.push_back(src);
      }
    }
    End(r);
  }

  void Push() {
    const ListedImage* img = PickImage();
    if (!img) return;
    std::string tag = "t" + std::to_string(Pick(3));
    std::string dest = Chance(50)
                           ? plan_.registry + "/stress/w" + std::to_string(index_) + ":" + tag
                           : "oci:" + plan_.work_dir + "/pushed:" + tag;
    OpRecord r = Begin("push", {"push", "-q", img->id, dest});
    r.target_id = img->id;
    r.seen_ns = list_ns_;
    Imgstore(r);
    End(r);
    if (r.exit_code == 0 && std::find(pushed_.begin(), pushed_.end(), dest) == pushed_.end()) {
      pushed_.push_back(dest);
    }
  }

  void Tag() {
    const ListedImage* img = PickImage();
    if (!img) return;
    std::string name = NewName();
    OpRecord r = Begin("tag", {"tag", img->id, name});
    r.target_id = img->id;
    r.seen_ns = list_ns_;
    Imgstore(r);
    if (r.exit_code == 0) r.changed_names = {name};
    End(r);
  }

  void Untag() {
    std::vector<const ListedImage*> named;
    if (images_.empty()) List();
    for (const ListedImage& i : images_) {
      if (!i.names.empty()) named.push_back(&i);
    }
    if (named.empty()) return;
    const ListedImage* img = named[static_cast<size_t>(Pick(static_cast<int>(named.size())))];
    std::string name = img->names[static_cast<size_t>(Pick(static_cast<int>(img->names.size())))];
    OpRecord r = Begin("untag", {"untag", img->id, name});
    r.target_id = img->id;
    r.target_name = name;
    r.seen_ns = list_ns_;
    Imgstore(r);
    if (r.exit_code == 0) r.changed_names = {name};
    End(r);
  }

  void Rmi() {
    const ListedImage* img = PickImage();
    if (!img) return;
    OpRecord r = Begin("rmi", {});
    r.target_id = img->id;
    r.seen_ns = list_ns_;
    if (!img->names.empty() && Chance(50)) {
      r.target_name = img->names[static_cast<size_t>(Pick(static_cast<int>(img->names.size())))];
      r.args = {"rmi", r.target_name};
    } else {
      r.args = {"rmi", "--force", img->id};
    }
    std::string out = Imgstore(r);
    if (r.exit_code == 0) {
      for (const std::string& line : Lines(out)) {
        if (line.rfind("Deleted: ", 0) == 0) r.deleted_ids.push_back(line.substr(9));
        if (line.rfind("Untagged: ", 0) == 0) r.changed_names.push_back(line.substr(10));
      }
    }
    End(r);
  }

  void Gc() {
    OpRecord r = Begin("gc", {"gc"});
    Imgstore(r);
    End(r);
  }

  void Unpack() {
    const ListedImage* img = PickImage();
    if (!img) return;
    std::string dir = plan_.work_dir + "/unpack-" + std::to_string(seq_);
    OpRecord r = Begin("unpack", {"unpack", img->id, dir});
    r.target_id = img->id;
    r.seen_ns = list_ns_;
    Imgstore(r);
    End(r);
    RemoveTree(dir);
  }

  void Mount() {
    if (mounts_.size() >= 3) {
      UmountOne();
      return;
    }
    const ListedImage* img = PickImage();
    if (!img) return;
    std::string name = "w" + std::to_string(index_) + "-m" + std::to_string(seq_);
    OpRecord r = Begin("mount", {"mount", img->id, "--name", name});
    r.target_id = img->id;
    r.seen_ns = list_ns_;
    std::string out = Imgstore(r);
    End(r);
    if (r.exit_code == 0) {
      std::string path = out.substr(0, out.find('\n'));
      mounts_.push_back({name, path, r.end_ns});
    }
  }

  // Writes a file into one of our mounts and commits the mount as a new image.
  void Commit() {
    if (mounts_.empty()) {
      Mount();
      return;
    }
    OwnMount m = mounts_[static_cast<size_t>(Pick(static_cast<int>(mounts_.size())))];
    OpRecord w = Begin("write", {m.path});
    w.target_mount = m.name;
    w.seen_ns = m.seen_ns;
    std::string file = m.path + "/stress-" + std::to_string(index_) + "-" + std::to_string(w.seq);
    {
      std::ofstream out(file);
      out << "written by worker " << index_ << " op " << w.seq << "\n";
      out.close();
      if (!out) {
        w.exit_code = 1;
        w.err = "cannot write " + file;
      }
    }
    End(w);
    std::string name =
        "stress.test/w" + std::to_string(index_) + "/c" + std::to_string(Pick(3)) + ":latest";
    OpRecord r = Begin("commit", {"commit", m.name, name});
    r.target_mount = m.name;
    r.seen_ns = m.seen_ns;
    Imgstore(r);
    if (r.exit_code == 0) r.changed_names = {name};
    End(r);
  }

  void Umount(OwnMount m) {  // a copy: m may be an element of mounts_
    OpRecord r = Begin("umount", {"umount", m.name});
    r.target_mount = m.name;
    r.seen_ns = m.seen_ns;
    Imgstore(r);
    if (r.exit_code == 0) r.removed_mounts = {m.name};
    End(r);
    mounts_.erase(std::remove_if(mounts_.begin(), mounts_.end(),
                                 [&](const OwnMount& o) { return o.name == m.name; }),
                  mounts_.end());
  }

  // Mostly one of our own mounts; sometimes another worker's, found by `mounts`, so that two
  // processes race to remove one mount (and a commit meets a mount removed under it).
  void UmountOne() {
    if (!Chance(15)) {
      if (mounts_.empty()) return;
      Umount(mounts_[static_cast<size_t>(Pick(static_cast<int>(mounts_.size())))]);
      return;
    }
    OpRecord r = Begin("mounts", {"mounts", "--format", "json"});
    std::string out = Imgstore(r);
    End(r);
    if (r.exit_code != 0) return;
    json j = json::parse(out, nullptr, false);
    std::vector<std::string> names;
    if (j.is_array()) {
      for (const json& e : j) {
        if (e.is_object() && e.contains("name") && e["name"].is_string()) {
          names.push_back(e["name"].get<std::string>());
        }
      }
    }
    if (names.empty()) return;
    Umount({names[static_cast<size_t>(Pick(static_cast<int>(names.size())))], "", r.start_ns});
  }

  Plan plan_;
  int index_;
  std::mt19937_64 rng_;
  int64_t until_ns_;
  int log_fd_ = -1;
  int seq_ = 0;
  std::vector<ListedImage> images_;  // the last list
  int64_t list_ns_ = 0;              // when that list started
  std::vector<OwnMount> mounts_;
  std::vector<std::string> pushed_;  // destinations this worker pushed to: pull sources
};

}  // namespace
}  // namespace imgstore::testing::stress

int main(int argc, char** argv) {
  using namespace imgstore::testing::stress;
  if (argc != 6) {
    std::fprintf(stderr, "usage: stress_worker PLAN_JSON WORKER SEED UNTIL_NS LOG\n");
    return 2;
  }
  std::ifstream in(argv[1]);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) {
    std::fprintf(stderr, "stress_worker: cannot read plan %s\n", argv[1]);
    return 2;
  }
  Plan plan;
  plan.root = j.value("root", "");
  plan.registry = j.value("registry", "");
  plan.sources = j.value("sources", std::vector<std::string>{});
  plan.op_timeout = std::chrono::milliseconds(j.value("op_timeout_ms", 180'000));
  int index = std::atoi(argv[2]);
  plan.work_dir = j.value("work_dir", "") + "/w" + std::to_string(index);
  ::mkdir(plan.work_dir.c_str(), 0755);
  if (plan.sources.empty()) {
    std::fprintf(stderr, "stress_worker: the plan has no sources\n");
    return 2;
  }
  Worker worker(std::move(plan), index, std::strtoull(argv[3], nullptr, 10),
                std::strtoll(argv[4], nullptr, 10), argv[5]);
  if (!worker.ok()) {
    std::perror("stress_worker: open log");
    return 2;
  }
  worker.Run();
  return 0;
}
