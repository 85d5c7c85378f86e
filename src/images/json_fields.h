// Internal to src/images: reading untrusted JSON documents (manifests, indexes, configs) into
// typed fields without letting an exception out and with one-line errors that name the field
// ("layers[2].size: must be a non-negative integer, got -1").
//
// The rules are Go's encoding/json where registries and builders depend on them (an optional
// field that is null counts as absent; numbers must be integers where Go has an int64), and
// stricter where leniency is an attack surface: duplicate keys and deep nesting are errors.
#pragma once

#include <cstdint>
#include <exception>
#include <map>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "util/digest.h"
#include "util/status.h"

namespace imgstore::images::internal {

using Json = nlohmann::json;

// Parses bytes that must hold one JSON object. Rejects, with kInvalidArgument: malformed JSON
// (including invalid UTF-8 and trailing bytes), nesting deeper than max_depth, and an object
// with a key given twice. Duplicate keys are refused because parsers disagree about them (Go
// keeps the last, others the first): two programs reading one manifest must see one document,
// which is the heart of CVE-2021-41190.
Result<Json> ParseJsonObject(std::string_view bytes, int max_depth);

// "prefix.key", or "key" at the top level.
std::string FieldPath(std::string_view prefix, std::string_view key);
// kInvalidArgument "<path>: <problem>".
Status FieldError(std::string_view path, std::string_view problem);

// The value of obj[key], or nullptr when the key is absent or its value is null (Go leaves the
// field unset in both cases). obj must be an object.
const Json* Find(const Json& obj, std::string_view key);

// Readers of one field of an object. "Optional" readers leave *out unchanged when the field is
// absent or null; "Required" ones fail then. A value of the wrong type always fails.
Status ReadRequiredString(const Json& obj, std::string_view key, std::string_view prefix,
                          std::string* out);
Status ReadOptionalString(const Json& obj, std::string_view key, std::string_view prefix,
                          std::string* out);
Status ReadOptionalBool(const Json& obj, std::string_view key, std::string_view prefix, bool* out);
// A JSON integer in [0, INT64_MAX]; 1.0, "1" and -1 are all refused.
Status ReadRequiredSize(const Json& obj, std::string_view key, std::string_view prefix,
                        std::int64_t* out);
Status ReadOptionalStringList(const Json& obj, std::string_view key, std::string_view prefix,
                              std::vector<std::string>* out);
// An object whose values are all strings (annotations, labels).
Status ReadOptionalStringMap(const Json& obj, std::string_view key, std::string_view prefix,
                             std::map<std::string, std::string>* out);
// A digest string, checked by Digest::Parse (malformed → kInvalidArgument, an algorithm
// imgstore does not know → kUnsupported).
Status ReadRequiredDigest(const Json& obj, std::string_view key, std::string_view prefix,
                          Digest* out);
Status ParseDigestValue(const Json& value, std::string_view path, Digest* out);

// Runs fn, turning any exception that escapes it into a Status, so that no exception leaves the
// library whatever a parser or an allocation does. fn returns a Result<T> or a Status; the
// caller adds the context ("manifest: ") to the error.
template <typename Fn>
auto CatchAll(Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return Status(Code::kInternal, "out of memory");
  } catch (const nlohmann::json::exception& e) {
    // A type or access error that the checks before it should have prevented: treat the input
    // as malformed, but say it is unexpected so that it gets reported.
    return Status(Code::kInvalidArgument, std::string("unexpected JSON error: ") + e.what());
  } catch (const std::exception& e) {
    return Status(Code::kInternal, std::string("unexpected exception: ") + e.what());
  } catch (...) {
    return Status(Code::kInternal, "unknown exception");
  }
}

}  // namespace imgstore::images::internal
