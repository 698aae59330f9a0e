#include "shmlog/status.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace shmlog {

Status::Status(Code code, std::string message)
    : state_(code == Code::kOk ? nullptr : new State{code, std::move(message)}) {}

Status::Status(const Status& other)
    : state_(other.state_ ? new State(*other.state_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) state_.reset(other.state_ ? new State(*other.state_) : nullptr);
  return *this;
}

std::string quoted(std::string_view bytes, std::size_t max) {
  std::string out = "'";
  for (std::size_t i = 0; i < bytes.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  if (bytes.size() > max) out += "...";
  return out + "'";
}

Status Status::from_errno(std::string_view context, int errnum) {
  Code code = Code::kIoError;
  switch (errnum) {
    case ENOENT: code = Code::kNotFound; break;
    case EEXIST: code = Code::kAlreadyExists; break;
    case ENOSPC:
    case ENOMEM:
    case EDQUOT: code = Code::kNoSpace; break;
    case EACCES:
    case EPERM: code = Code::kPermissionDenied; break;
    case EINVAL: code = Code::kInvalidArgument; break;
    case EBUSY: code = Code::kBusy; break;
    default: break;
  }
  std::string message(context);
  message += ": ";
  message += std::strerror(errnum);
  return Status(code, std::move(message));
}

const std::string& Status::message() const noexcept {
  static const std::string kEmpty;
  return state_ ? state_->message : kEmpty;
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(code_name(code())) + ": " + state_->message;
}

Status Status::with_context(std::string_view context) && {
  if (state_) state_->message = std::string(context) + ": " + state_->message;
  return std::move(*this);
}

void fail_on_value_of_error(const Status& status) noexcept {
  std::fprintf(stderr, "shmlog: value() of a failed Result: %s\n", status.to_string().c_str());
  std::abort();
}

const char* code_name(Status::Code code) noexcept {
  switch (code) {
    case Status::Code::kOk: return "ok";
    case Status::Code::kInvalidArgument: return "invalid argument";
    case Status::Code::kNotFound: return "not found";
    case Status::Code::kAlreadyExists: return "already exists";
    case Status::Code::kCorrupt: return "corrupt";
    case Status::Code::kVersionMismatch: return "version mismatch";
    case Status::Code::kNoSpace: return "no space";
    case Status::Code::kIoError: return "I/O error";
    case Status::Code::kTimeout: return "timeout";
    case Status::Code::kBusy: return "busy";
    case Status::Code::kPermissionDenied: return "permission denied";
    case Status::Code::kAborted: return "aborted";
  }
  return "unknown";
}

}  // namespace shmlog
