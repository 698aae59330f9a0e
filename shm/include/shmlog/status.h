// Status and Result: the error currency of shmlog's cold paths (create, open,
// map, recover). Success holds no allocation; an error carries a code and a
// message that gains context as it travels up ("opening log ./orders: ...").
// Hot paths never use these: they return small enums (see shmlog/log.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace shmlog {

class [[nodiscard]] Status {
 public:
  enum class Code : std::uint8_t {
    kOk = 0,
    kInvalidArgument,
    kNotFound,
    kAlreadyExists,
    kCorrupt,
    kVersionMismatch,
    kNoSpace,
    kIoError,
    kTimeout,
    kBusy,
    kPermissionDenied,
    kAborted,  // fenced by a newer instance, or a transaction aborted
  };

  Status() noexcept = default;
  Status(Code code, std::string message);
  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;
  ~Status() = default;

  
  // An OS error: `context` names the file or object, errno becomes its text.
  static Status from_errno(std::string_view context, int errnum);

  bool ok() const noexcept { return state_ == nullptr; }
  Code code() const noexcept { return state_ ? state_->code : Code::kOk; }
  // The message without the code name; empty when ok.
  const std::string& message() const noexcept;
  // "code name: message", or "ok".
  std::string to_string() const;
  // Prefixes the message with "context: ". A no-op on success.
  Status with_context(std::string_view context) &&;

 private:
  struct State {
    Code code;
    std::string message;
  };
  std::unique_ptr<State> state_;
};

const char* code_name(Status::Code code) noexcept;
[[noreturn]] void fail_on_value_of_error(const Status& status) noexcept;

// A value or an error Status. Accessing value() of an error is a
// precondition violation (checked in debug builds).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  bool ok() const noexcept { return status_.ok(); }
  const Status& status() const& noexcept { return status_; }
  Status status() && noexcept { return std::move(status_); }
  // value() of an error is a bug in the caller: it aborts naming the error.
  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Result*>(this)->checked(); }
  T& operator*() & { return checked(); }

 private:
  T& checked() {
    if (!value_) fail_on_value_of_error(status_);
    return *value_;
  }
  std::optional<T> value_;
  Status status_;
};

// Bytes from a file or another process, fit for a one-line message:
// quoted, anything not printable ASCII written as \xNN, cut after `max`
// bytes with "...".
std::string quoted(std::string_view bytes, std::size_t max = 64);

}  // namespace shmlog

// Returns early from the enclosing function with the error of `expr`.
#define SHMLOG_RETURN_IF_ERROR(expr)              \
  do {                                            \
    ::shmlog::Status shmlog_status_ = (expr);     \
    if (!shmlog_status_.ok()) return shmlog_status_; \
  } while (0)
