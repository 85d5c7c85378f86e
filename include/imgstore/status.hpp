// Status and Result<T>: the one error type of the imgstore library, public and internal alike.
//
// Every fallible call returns a Status (or a Result<T> carrying a value or a Status). No exception
// crosses a library boundary. An OK status costs a byte and an empty string; an error carries a
// code a caller can branch on and one line of text a person can read.
//
// Part of the public API (include/imgstore/): src/util/status.h includes this header, so the
// library and its embedders share one type.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace imgstore {

enum class Code {
  kOk = 0,
  kInvalidArgument,     // the caller's input is malformed (a reference, an option, a manifest)
  kNotFound,            // the named object does not exist
  kAlreadyExists,       // the object exists and the call does not replace it
  kCorruption,          // stored or received data fails a check (digest, size, format)
  kIOError,             // the operating system refused an operation
  kNoSpace,             // the disk (or a quota) is full
  kPermissionDenied,    // the operating system or a registry said no
  kTimeout,             // a deadline passed (lock waits name the lock and its holders)
  kBusy,                // a try-acquisition found the object in use
  kUnavailable,         // a peer (registry) cannot be reached now; retrying may help
  kFailedPrecondition,  // the object is in the wrong state for the call
  kCancelled,           // the caller cancelled the operation
  kUnsupported,         // valid input that imgstore does not handle
  kInternal,            // a bug: an invariant of imgstore itself failed
};

std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  // An error from errno: "<what>: <strerror(err)>", with the code that errno implies.
  static Status FromErrno(int err, std::string_view what);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "<code name>: <message>", or "OK".
  std::string ToString() const;

  // Prefixes the message with context ("pull foo: " + message); keeps the code.
  Status WithContext(std::string_view context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or an error. Access to value() of an error result is a bug (it aborts).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    if (status_.ok()) status_ = Status(Code::kInternal, "Result built from an OK status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  Status status_;  // OK exactly when value_ holds a value
  std::optional<T> value_;
};

}  // namespace imgstore
