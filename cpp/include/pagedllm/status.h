// Status and Result<T>: failures cross the public API as values, never as exceptions.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace pagedllm {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // the caller's input is wrong (bad sampling params, oversize prompt, ...)
  kNotFound,          // a file, tensor or request id does not exist
  kUnsupported,       // a valid input pagedllm does not handle (architecture, dtype, ...)
  kCorruptData,       // a file exists but its contents are malformed
  kAlreadyExists,     // e.g. a request id that is already in flight
  kResourceExhausted, // out of memory, or the KV cache cannot hold a request
  kInternal,          // a bug in pagedllm
};

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok_status() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a value or a non-ok Status.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}           // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}   // NOLINT: precondition: !status.ok()

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace pagedllm
