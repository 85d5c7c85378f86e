// Strict parsing of untrusted JSON and typed field readers with field paths in their errors.
#include "images/json_fields.h"

#include <limits>
#include <set>
#include <utility>

#include "util/quote.h"

namespace imgstore::images::internal {
namespace {

// A SAX pass that builds nothing: it finds duplicate keys and excessive depth, which the DOM
// parser would silently accept (last key wins) or spend memory on, and it captures the syntax
// error message without an exception.
class StrictChecker final : public nlohmann::json_sax<Json> {
 public:
  explicit StrictChecker(int max_depth) : max_depth_(max_depth) {}

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return Push(true); }
  bool key(string_t& k) override {
    if (!frames_.back().keys.insert(k).second) {
      error_ = "duplicate key " + Quote(k, 64) + " in one JSON object";
      return false;
    }
    return true;
  }
  bool end_object() override {
    frames_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return Push(false); }
  bool end_array() override {
    frames_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::json::exception& ex) override {
    error_ = CleanParserMessage(ex.what());
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  struct Frame {
    bool is_object;
    std::set<std::string> keys;
  };

  bool Push(bool is_object) {
    if (static_cast<int>(frames_.size()) >= max_depth_) {
      error_ = "JSON nested deeper than " + std::to_string(max_depth_) +
               " levels (raise the limit max_nesting_depth to accept it)";
      return false;
    }
    frames_.push_back(Frame{is_object, {}});
    return true;
  }

  // nlohmann's text is "[json.exception.parse_error.101] parse error at line 1, column 7: …;
  // last read: '<input bytes>'": drop the tag, and keep the input's bytes from breaking the
  // one-line message (they may be control characters or invalid UTF-8).
  static std::string CleanParserMessage(std::string_view what) {
    if (!what.empty() && what.front() == '[') {
      const std::size_t close = what.find("] ");
      if (close != std::string_view::npos) what.remove_prefix(close + 2);
    }
    constexpr std::size_t kMax = 300;
    std::string out = "malformed JSON: ";
    for (char ch : what.substr(0, kMax)) {
      const auto c = static_cast<unsigned char>(ch);
      out += (c >= 0x20 && c < 0x7f) ? ch : '?';
    }
    if (what.size() > kMax) out += "...";
    return out;
  }

  int max_depth_;
  std::vector<Frame> frames_;
  std::string error_;
};

}  // namespace

Result<Json> ParseJsonObject(std::string_view bytes, int max_depth) {
  StrictChecker checker(max_depth);
  const bool ok = Json::sax_parse(bytes.begin(), bytes.end(), &checker);
  if (!ok) {
    std::string msg = checker.error().empty() ? "malformed JSON" : checker.error();
    return Status(Code::kInvalidArgument, std::move(msg));
  }
  // The checker accepted the bytes, so this parse cannot fail on syntax; CatchAll in the callers
  // covers allocation failure.
  Json doc = Json::parse(bytes.begin(), bytes.end());
  if (!doc.is_object()) {
    return Status(Code::kInvalidArgument,
                  std::string("must be a JSON object, got ") + doc.type_name());
  }
  return doc;
}

std::string FieldPath(std::string_view prefix, std::string_view key) {
  std::string out(prefix);
  if (!out.empty()) out += '.';
  out += key;
  return out;
}

Status FieldError(std::string_view path, std::string_view problem) {
  std::string msg(path);
  msg += ": ";
  msg += problem;
  return Status(Code::kInvalidArgument, std::move(msg));
}

const Json* Find(const Json& obj, std::string_view key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

namespace {

std::string WrongType(std::string_view want, const Json& got) {
  return std::string("must be ") + std::string(want) + ", got " + got.type_name();
}

}  // namespace

Status ReadRequiredString(const Json& obj, std::string_view key, std::string_view prefix,
                          std::string* out) {
  const Json* v = Find(obj, key);
  if (v == nullptr) return FieldError(FieldPath(prefix, key), "missing");
  return ReadOptionalString(obj, key, prefix, out);
}

Status ReadOptionalString(const Json& obj, std::string_view key, std::string_view prefix,
                          std::string* out) {
  const Json* v = Find(obj, key);
  if (v == nullptr) return Status::OK();
  if (!v->is_string()) return FieldError(FieldPath(prefix, key), WrongType("a string", *v));
  *out = v->get_ref<const std::string&>();
  return Status::OK();
}

Status ReadOptionalBool(const Json& obj, std::string_view key, std::string_view prefix, bool* out) {
  const Json* v = Find(obj, key);
  if (v == nullptr) return Status::OK();
  if (!v->is_boolean()) return FieldError(FieldPath(prefix, key), WrongType("true or false", *v));
  *out = v->get<bool>();
  return Status::OK();
}

Status ReadRequiredSize(const Json& obj, std::string_view key, std::string_view prefix,
                        std::int64_t* out) {
  const Json* v = Find(obj, key);
  const std::string path = FieldPath(prefix, key);
  if (v == nullptr) return FieldError(path, "missing");
  if (v->is_number_unsigned()) {
    const auto n = v->get<std::uint64_t>();
    if (n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return FieldError(path, "too large: " + std::to_string(n));
    }
    *out = static_cast<std::int64_t>(n);
    return Status::OK();
  }
  if (v->is_number_integer()) {  // signed: nlohmann reads "-5" (and "-0") this way
    const auto n = v->get<std::int64_t>();
    if (n < 0) return FieldError(path, "must be a non-negative integer, got " + std::to_string(n));
    *out = n;
    return Status::OK();
  }
  if (v->is_number_float()) {
    return FieldError(path, "must be a non-negative integer, got a fraction or exponent");
  }
  return FieldError(path, WrongType("a non-negative integer", *v));
}

Status ReadOptionalStringList(const Json& obj, std::string_view key, std::string_view prefix,
                              std::vector<std::string>* out) {
  const Json* v = Find(obj, key);
  if (v == nullptr) return Status::OK();
  const std::string path = FieldPath(prefix, key);
  if (!v->is_array()) return FieldError(path, WrongType("an array of strings", *v));
  std::vector<std::string> items;
  items.reserve(v->size());
  for (std::size_t i = 0; i < v->size(); ++i) {
    const Json& item = (*v)[i];
    if (!item.is_string()) {
      return FieldError(path + "[" + std::to_string(i) + "]", WrongType("a string", item));
    }
    items.push_back(item.get_ref<const std::string&>());
  }
  *out = std::move(items);
  return Status::OK();
}

Status ReadOptionalStringMap(const Json& obj, std::string_view key, std::string_view prefix,
                             std::map<std::string, std::string>* out) {
  const Json* v = Find(obj, key);
  if (v == nullptr) return Status::OK();
  const std::string path = FieldPath(prefix, key);
  if (!v->is_object()) return FieldError(path, WrongType("an object of strings", *v));
  std::map<std::string, std::string> items;
  for (const auto& [k, item] : v->items()) {
    if (!item.is_string())
      return FieldError(path + "[" + Quote(k, 64) + "]", WrongType("a string", item));
    items.emplace(k, item.get_ref<const std::string&>());
  }
  *out = std::move(items);
  return Status::OK();
}

Status ParseDigestValue(const Json& value, std::string_view path, Digest* out) {
  if (!value.is_string()) return FieldError(path, WrongType("a digest string", value));
  Result<Digest> d = Digest::Parse(value.get_ref<const std::string&>());
  if (!d.ok()) return d.status().WithContext(path);
  *out = std::move(d).value();
  return Status::OK();
}

Status ReadRequiredDigest(const Json& obj, std::string_view key, std::string_view prefix,
                          Digest* out) {
  const Json* v = Find(obj, key);
  const std::string path = FieldPath(prefix, key);
  if (v == nullptr) return FieldError(path, "missing");
  return ParseDigestValue(*v, path, out);
}

}  // namespace imgstore::images::internal
