// The C ABI, part 2: images (list, inspect and their accessors, tag, untag, remove) and
// maintenance (gc, check, locks).
#include <string>
#include <utility>
#include <vector>

#include "api/c_api.h"

using imgstore::capi::Boundary;
using imgstore::capi::FromStatus;
using imgstore::capi::NullArgument;

namespace {

const char* Str(const imgstore_image* image, const std::string imgstore::ImageSummary::*field) {
  return image == nullptr ? nullptr : (image->details.summary.*field).c_str();
}

const imgstore::LayerInfo* Layer(const imgstore_image* image, size_t i) {
  if (image == nullptr || i >= image->details.layers.size()) return nullptr;
  return &image->details.layers[i];
}

const imgstore_lock_list::Row* Row(const imgstore_lock_list* list, size_t i) {
  if (list == nullptr || i >= list->rows.size()) return nullptr;
  return &list->rows[i];
}

}  // namespace

extern "C" {

imgstore_code imgstore_list(imgstore_store* store, const char* filter, imgstore_image_list** out,
                            imgstore_error** err) {
  constexpr const char* kFn = "imgstore_list";
  if (out == nullptr) return NullArgument(err, kFn, "out");
  *out = nullptr;
  if (store == nullptr) return NullArgument(err, kFn, "store");
  return Boundary(err, kFn, [&] {
    imgstore::Result<std::vector<imgstore::ImageSummary>> rows =
        store->store->List(filter == nullptr ? "" : filter);
    if (!rows.ok()) return FromStatus(rows.status(), err);
    auto list = std::make_unique<imgstore_image_list>();
    list->images.reserve(rows->size());
    for (imgstore::ImageSummary& s : *rows) {
      imgstore_image image;
      image.details.summary = std::move(s);
      list->images.push_back(std::move(image));
    }
    *out = list.release();
    return IMGSTORE_OK;
  });
}

size_t imgstore_image_list_count(const imgstore_image_list* list) {
  return list == nullptr ? 0 : list->images.size();
}

const imgstore_image* imgstore_image_list_at(const imgstore_image_list* list, size_t i) {
  if (list == nullptr || i >= list->images.size()) return nullptr;
  return &list->images[i];
}

void imgstore_image_list_free(imgstore_image_list* list) { delete list; }

imgstore_code imgstore_inspect(imgstore_store* store, const char* image, imgstore_image** out,
                               imgstore_error** err) {
  constexpr const char* kFn = "imgstore_inspect";
  if (out == nullptr) return NullArgument(err, kFn, "out");
  *out = nullptr;
  if (store == nullptr) return NullArgument(err, kFn, "store");
  if (image == nullptr) return NullArgument(err, kFn, "image");
  return Boundary(err, kFn, [&] {
    imgstore::Result<imgstore::ImageDetails> d = store->store->Inspect(image);
    if (!d.ok()) return FromStatus(d.status(), err);
    auto handle = std::make_unique<imgstore_image>();
    handle->details = std::move(*d);
    handle->inspected = true;
    *out = handle.release();
    return IMGSTORE_OK;
  });
}

void imgstore_image_free(imgstore_image* image) { delete image; }

const char* imgstore_image_id(const imgstore_image* image) {
  return Str(image, &imgstore::ImageSummary::id);
}
const char* imgstore_image_manifest_digest(const imgstore_image* image) {
  return Str(image, &imgstore::ImageSummary::manifest_digest);
}
size_t imgstore_image_name_count(const imgstore_image* image) {
  return image == nullptr ? 0 : image->details.summary.names.size();
}
const char* imgstore_image_name(const imgstore_image* image, size_t i) {
  if (image == nullptr || i >= image->details.summary.names.size()) return nullptr;
  return image->details.summary.names[i].c_str();
}
uint64_t imgstore_image_size(const imgstore_image* image) {
  return image == nullptr ? 0 : image->details.summary.size;
}
const char* imgstore_image_created(const imgstore_image* image) {
  return Str(image, &imgstore::ImageSummary::created);
}
const char* imgstore_image_os(const imgstore_image* image) {
  return Str(image, &imgstore::ImageSummary::os);
}
const char* imgstore_image_architecture(const imgstore_image* image) {
  return Str(image, &imgstore::ImageSummary::architecture);
}
const char* imgstore_image_manifest(const imgstore_image* image) {
  return image == nullptr || !image->inspected ? nullptr : image->details.manifest.c_str();
}
const char* imgstore_image_config(const imgstore_image* image) {
  return image == nullptr || !image->inspected ? nullptr : image->details.config.c_str();
}
size_t imgstore_image_layer_count(const imgstore_image* image) {
  return image == nullptr ? 0 : image->details.layers.size();
}
const char* imgstore_image_layer_digest(const imgstore_image* image, size_t i) {
  const imgstore::LayerInfo* l = Layer(image, i);
  return l == nullptr ? nullptr : l->digest.c_str();
}
const char* imgstore_image_layer_diff_id(const imgstore_image* image, size_t i) {
  const imgstore::LayerInfo* l = Layer(image, i);
  return l == nullptr ? nullptr : l->diff_id.c_str();
}
uint64_t imgstore_image_layer_size(const imgstore_image* image, size_t i) {
  const imgstore::LayerInfo* l = Layer(image, i);
  return l == nullptr ? 0 : l->size;
}

imgstore_code imgstore_tag(imgstore_store* store, const char* image, const char* name,
                           imgstore_error** err) {
  constexpr const char* kFn = "imgstore_tag";
  if (store == nullptr) return NullArgument(err, kFn, "store");
  if (image == nullptr) return NullArgument(err, kFn, "image");
  if (name == nullptr) return NullArgument(err, kFn, "name");
  return Boundary(err, kFn, [&] { return FromStatus(store->store->Tag(image, name), err); });
}

imgstore_code imgstore_untag(imgstore_store* store, const char* image, const char* const* names,
                             size_t count, imgstore_error** err) {
  constexpr const char* kFn = "imgstore_untag";
  if (store == nullptr) return NullArgument(err, kFn, "store");
  if (image == nullptr) return NullArgument(err, kFn, "image");
  if (count > 0 && names == nullptr) return NullArgument(err, kFn, "names");
  for (size_t i = 0; i < count; ++i) {
    if (names[i] == nullptr) return NullArgument(err, kFn, "a name");
  }
  return Boundary(err, kFn, [&] {
    std::vector<std::string> list(names, names + count);
    return FromStatus(store->store->Untag(image, list), err);
  });
}

imgstore_code imgstore_remove(imgstore_store* store, const char* image, int force, int* deleted,
                              imgstore_error** err) {
  constexpr const char* kFn = "imgstore_remove";
  if (store == nullptr) return NullArgument(err, kFn, "store");
  if (image == nullptr) return NullArgument(err, kFn, "image");
  return Boundary(err, kFn, [&] {
    imgstore::Result<imgstore::RemoveResult> r = store->store->Remove(image, force != 0);
    if (!r.ok()) return FromStatus(r.status(), err);
    if (deleted != nullptr) *deleted = r->deleted.empty() ? 0 : 1;
    return IMGSTORE_OK;
  });
}

imgstore_code imgstore_gc(imgstore_store* store, int dry_run, imgstore_gc_report* report,
                          imgstore_error** err) {
  constexpr const char* kFn = "imgstore_gc";
  if (store == nullptr) return NullArgument(err, kFn, "store");
  return Boundary(err, kFn, [&] {
    imgstore::GcOptions options;
    options.dry_run = dry_run != 0;
    imgstore::Result<imgstore::GcReport> r = store->store->Gc(options);
    if (!r.ok()) return FromStatus(r.status(), err);
    if (report != nullptr) {
      report->blobs_removed = r->blobs_removed.size();
      report->bytes_removed = r->bytes_removed;
      report->manifests_removed = static_cast<uint64_t>(r->manifests_removed);
      report->layers_removed = static_cast<uint64_t>(r->layers_removed);
      report->leases_removed = static_cast<uint64_t>(r->leases_removed);
    }
    return IMGSTORE_OK;
  });
}

imgstore_code imgstore_check(imgstore_store* store, int verify_content, int repair,
                             imgstore_check_report** out, imgstore_error** err) {
  constexpr const char* kFn = "imgstore_check";
  if (out == nullptr) return NullArgument(err, kFn, "out");
  *out = nullptr;
  if (store == nullptr) return NullArgument(err, kFn, "store");
  return Boundary(err, kFn, [&] {
    imgstore::CheckOptions options;
    options.verify_content = verify_content != 0;
    options.repair = repair != 0;
    imgstore::Result<imgstore::CheckReport> r = store->store->Check(options);
    if (!r.ok()) return FromStatus(r.status(), err);
    auto handle = std::make_unique<imgstore_check_report>();
    handle->report = std::move(*r);
    *out = handle.release();
    return IMGSTORE_OK;
  });
}

int imgstore_check_report_clean(const imgstore_check_report* report) {
  return report == nullptr || report->report.clean() ? 1 : 0;
}
size_t imgstore_check_report_count(const imgstore_check_report* report) {
  return report == nullptr ? 0 : report->report.problems.size();
}
const char* imgstore_check_report_kind(const imgstore_check_report* report, size_t i) {
  if (report == nullptr || i >= report->report.problems.size()) return nullptr;
  return report->report.problems[i].kind.c_str();
}
const char* imgstore_check_report_message(const imgstore_check_report* report, size_t i) {
  if (report == nullptr || i >= report->report.problems.size()) return nullptr;
  return report->report.problems[i].message.c_str();
}
void imgstore_check_report_free(imgstore_check_report* report) { delete report; }

imgstore_code imgstore_locks(imgstore_store* store, int all, imgstore_lock_list** out,
                             imgstore_error** err) {
  constexpr const char* kFn = "imgstore_locks";
  if (out == nullptr) return NullArgument(err, kFn, "out");
  *out = nullptr;
  if (store == nullptr) return NullArgument(err, kFn, "store");
  return Boundary(err, kFn, [&] {
    imgstore::Result<imgstore::LocksReport> r = store->store->Locks(all != 0);
    if (!r.ok()) return FromStatus(r.status(), err);
    auto list = std::make_unique<imgstore_lock_list>();
    for (const imgstore::LockEntry& l : r->locks) {
      if (l.holders.empty() && l.waiters.empty()) list->rows.push_back({l.name, "free", 0, ""});
      for (const imgstore::LockHolder& h : l.holders) {
        list->rows.push_back({l.name, "held", h.pid, h.operation});
      }
      for (const imgstore::LockHolder& w : l.waiters) {
        list->rows.push_back({l.name, "waiting", w.pid, w.operation});
      }
    }
    for (const imgstore::LeaseEntry& le : r->leases) {
      list->rows.push_back({"lease " + le.id, le.alive ? "held" : "dead", le.pid, le.label});
    }
    *out = list.release();
    return IMGSTORE_OK;
  });
}

size_t imgstore_lock_list_count(const imgstore_lock_list* list) {
  return list == nullptr ? 0 : list->rows.size();
}
const char* imgstore_lock_list_name(const imgstore_lock_list* list, size_t i) {
  const imgstore_lock_list::Row* r = Row(list, i);
  return r == nullptr ? nullptr : r->name.c_str();
}
const char* imgstore_lock_list_state(const imgstore_lock_list* list, size_t i) {
  const imgstore_lock_list::Row* r = Row(list, i);
  return r == nullptr ? nullptr : r->state.c_str();
}
int imgstore_lock_list_pid(const imgstore_lock_list* list, size_t i) {
  const imgstore_lock_list::Row* r = Row(list, i);
  return r == nullptr ? 0 : r->pid;
}
const char* imgstore_lock_list_operation(const imgstore_lock_list* list, size_t i) {
  const imgstore_lock_list::Row* r = Row(list, i);
  return r == nullptr ? nullptr : r->operation.c_str();
}
void imgstore_lock_list_free(imgstore_lock_list* list) { delete list; }

}  // extern "C"
