// BlobUploader (see blob_upload.h): the requests of one blob's push, in the order the
// distribution spec gives (HEAD, mount, POST + PUT or POST + PATCH + PUT), and the retry of an
// upload that failed for a passing reason.
#include "registry/blob_upload.h"

#include <algorithm>
#include <charconv>
#include <thread>
#include <utility>
#include <vector>

#include "registry/auth.h"

namespace imgstore::registry {
namespace {

// Registries may send a HEAD to storage; more hops than this is a loop.
constexpr int kMaxRedirects = 5;
// Origins tried for a mount before uploading: each costs a request.
constexpr size_t kMaxMountTries = 3;

const char* const kOctetStream = "Content-Type: application/octet-stream";

std::optional<uint64_t> ParseU64(std::string_view text) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

}  // namespace

std::string ResolveLocation(const std::string& base_url, const std::string& request_url,
                            const std::string& location) {
  if (location.starts_with("http://") || location.starts_with("https://")) return location;
  if (location.starts_with("//")) {
    size_t colon = base_url.find(':');
    return base_url.substr(0, colon == std::string::npos ? 0 : colon + 1) + location;
  }
  if (location.starts_with("/")) return base_url + location;
  // A path relative to the answered request's directory (its query and name dropped).
  std::string dir = request_url.substr(0, request_url.find('?'));
  dir = dir.substr(0, dir.rfind('/') + 1);
  return dir + location;
}

std::string AppendQuery(const std::string& url, const std::string& param) {
  size_t q = url.find('?');
  if (q == std::string::npos) return url + "?" + param;
  if (url.back() == '?' || url.back() == '&') return url + param;
  return url + "&" + param;
}

std::string BlobUploader::What(const images::Descriptor& d) const {
  return "push blob " + d.digest.ToString() + " to " + c_.client->host() + "/" + c_.path;
}

Result<bool> BlobUploader::Exists(const images::Descriptor& d) const {
  const std::string what = What(d);
  RegistryClient::Request r;
  r.method = "HEAD";
  r.target = "/v2/" + c_.path + "/blobs/" + d.digest.ToString();
  r.scope = c_.scope;
  r.max_redirects = kMaxRedirects;
  Result<std::unique_ptr<HttpStream>> s = c_.client->Send(r);
  if (!s.ok()) return s.status().WithContext(what);
  const long status = (*s)->response().status;
  if (status == 404) return false;
  if (status != 200) return ErrorFromAnswer(**s, what);
  // A blob of another size under the same digest is not ours to trust: upload, and let the
  // registry check what it receives.
  std::optional<uint64_t> size = ParseU64((*s)->response().Header("content-length"));
  return size && *size == static_cast<uint64_t>(d.size);
}

Status BlobUploader::Push(const images::Descriptor& d, std::optional<bool> known_present) const {
  const std::string what = What(d);
  if (d.size < 0) return Status(Code::kInvalidArgument, what + ": negative size");
  const uint64_t size = static_cast<uint64_t>(d.size);
  auto report = [&](bool mounted) {
    if (!c_.report) return;
    images::BlobProgress p;
    p.digest = d.digest;
    p.done = p.total = size;
    p.skipped = true;
    p.mounted = mounted;
    c_.report(p);
  };
  if (!known_present) {
    Result<bool> e = Exists(d);
    if (!e.ok()) return e.status();
    known_present = *e;
  }
  if (*known_present) {
    report(false);
    return Status::OK();
  }
  std::string session;
  if (TryMount(d, &session)) {
    report(true);
    return Status::OK();
  }
  const int max_attempts = std::max(1, c_.retry.max_attempts);
  for (int attempt = 1;; ++attempt) {
    Status s = UploadOnce(d, std::exchange(session, std::string()));
    if (s.ok() || s.code() != Code::kUnavailable) return s;
    if (attempt >= max_attempts) {
      if (attempt == 1) return s;
      return Status(s.code(),
                    s.message() + " (gave up after " + std::to_string(attempt) + " attempts)");
    }
    // The same doubling delays as the client's own retries, waited in slices so that a
    // cancelled push does not sit out a long backoff.
    const auto end = std::chrono::steady_clock::now() + RetryDelay(c_.retry, attempt);
    for (auto now = std::chrono::steady_clock::now(); now < end;
         now = std::chrono::steady_clock::now()) {
      if (c_.client->cancelled()) {
        return Status(Code::kCancelled, "blob " + d.digest.ToString() + ": cancelled");
      }
      const auto slice = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::min<std::chrono::steady_clock::duration>(end - now, std::chrono::milliseconds(100)));
      if (c_.backoff) {
        if (!c_.backoff(slice)) return s;
      } else {
        std::this_thread::sleep_for(slice);
      }
    }
    if (c_.client->cancelled()) {
      return Status(Code::kCancelled, "blob " + d.digest.ToString() + ": cancelled");
    }
  }
}

bool BlobUploader::TryMount(const images::Descriptor& d, std::string* session) const {
  auto it = c_.image->origins.find(d.digest);
  if (it == c_.image->origins.end()) return false;
  // Only repositories of this registry ("HOST/PATH" with this HOST), other than this one.
  std::vector<std::string> from;
  for (const std::string& origin : it->second) {
    size_t slash = origin.find('/');
    if (slash == std::string::npos || origin.substr(0, slash) != c_.client->host()) continue;
    std::string path = origin.substr(slash + 1);
    if (path.empty() || path == c_.path) continue;
    if (std::find(from.begin(), from.end(), path) == from.end()) from.push_back(path);
  }
  const size_t tries = std::min(from.size(), kMaxMountTries);
  for (size_t i = 0; i < tries; ++i) {
    RegistryClient::Request r;
    r.method = "POST";
    r.target =
        "/v2/" + c_.path + "/blobs/uploads/?mount=" + d.digest.ToString() + "&from=" + from[i];
    r.scope = c_.scope + " " + RepositoryScope(from[i], "pull");
    // A mount only saves an upload: a registry in trouble is left to the upload's retries.
    r.retry_status = false;
    Result<std::unique_ptr<HttpStream>> s = c_.client->Send(r);
    if (!s.ok()) continue;  // no right to pull from there, a dropped connection: not a failure
    const long status = (*s)->response().status;
    if (status == 201) return true;
    const std::string location = (*s)->response().Header("location");
    if (status != 202 || location.empty()) continue;
    // Not mounted (the origin lacks the blob, or forgot it); the answer is an upload session.
    std::string url =
        ResolveLocation(c_.client->base_url(), c_.client->base_url() + r.target, location);
    if (i + 1 < tries) {
      Cancel(url);
      continue;
    }
    *session = std::move(url);
  }
  return false;
}

Result<std::string> BlobUploader::StartSession(const std::string& what) const {
  RegistryClient::Request r;
  r.method = "POST";
  r.target = "/v2/" + c_.path + "/blobs/uploads/";
  r.scope = c_.scope;
  r.retry_status = false;  // Push() retries the whole upload
  Result<std::unique_ptr<HttpStream>> s = c_.client->Send(r);
  if (!s.ok()) return s.status().WithContext(what);
  if ((*s)->response().status != 202) return ErrorFromAnswer(**s, what);
  const std::string location = (*s)->response().Header("location");
  if (location.empty()) {
    return Status(Code::kFailedPrecondition,
                  what + ": the registry opened an upload without a Location (HTTP 202)");
  }
  return ResolveLocation(c_.client->base_url(), c_.client->base_url() + r.target, location);
}

void BlobUploader::Cancel(const std::string& location) const {
  RegistryClient::Request r;
  r.method = "DELETE";
  r.target = location;
  r.scope = c_.scope;
  r.retry_status = false;
  // Best effort: the registry also expires abandoned sessions itself.
  (void)c_.client->Send(r);
}

Status BlobUploader::UploadOnce(const images::Descriptor& d, std::string session) const {
  const std::string what = What(d);
  if (session.empty()) {
    Result<std::string> s = StartSession(what);
    if (!s.ok()) return s.status();
    session = std::move(*s);
  }
  Result<std::unique_ptr<SequentialFile>> file = c_.image->open_blob(d);
  if (!file.ok()) {
    Cancel(session);
    return file.status().WithContext(what);
  }
  const uint64_t size = static_cast<uint64_t>(d.size);
  const std::string digest_param = "digest=" + d.digest.ToString();
  // Any failure below leaves a session the registry would keep until it expires.
  auto fail = [&](Status st) {
    Cancel(session);
    return st;
  };

  RegistryClient::Request put;
  put.method = "PUT";
  put.scope = c_.scope;
  put.retry_status = false;
  if (size <= c_.monolithic_upload_max) {
    put.headers = {kOctetStream};
    put.body_stream = file->get();
    put.body_size = size;
  } else {
    RegistryClient::Request patch;
    patch.method = "PATCH";
    patch.target = session;
    patch.scope = c_.scope;
    patch.headers = {kOctetStream};
    patch.body_stream = file->get();
    patch.body_size = size;
    patch.retry_status = false;
    Result<std::unique_ptr<HttpStream>> s = c_.client->Send(patch);
    if (!s.ok()) return fail(s.status().WithContext(what));
    if ((*s)->response().status != 202) return fail(ErrorFromAnswer(**s, what));
    // "Range: 0-LAST" is what the session holds; anything short means bytes were lost on the way.
    const std::string range = (*s)->response().Header("range");
    if (!range.empty()) {
      std::optional<uint64_t> last;
      if (range.starts_with("0-")) last = ParseU64(std::string_view(range).substr(2));
      if (!last || *last + 1 != size) {
        return fail(Status(Code::kUnavailable, what + ": the registry holds bytes " + range +
                                                   " of " + std::to_string(size) +
                                                   " after the PATCH"));
      }
    }
    const std::string next = (*s)->response().Header("location");
    if (!next.empty()) session = ResolveLocation(c_.client->base_url(), session, next);
  }
  put.target = AppendQuery(session, digest_param);
  Result<std::unique_ptr<HttpStream>> s = c_.client->Send(put);
  if (!s.ok()) return fail(s.status().WithContext(what));
  if ((*s)->response().status != 201) return fail(ErrorFromAnswer(**s, what));
  Result<Digest> claimed = Digest::Parse((*s)->response().Header("docker-content-digest"));
  if (claimed.ok() && *claimed != d.digest) {
    return Status(Code::kCorruption, what + ": the registry stored it as " + claimed->ToString());
  }
  return Status::OK();
}

}  // namespace imgstore::registry
