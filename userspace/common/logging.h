// Leveled logging to stderr, one write(2) per line so lines from threads never interleave.
#pragma once

#include <sstream>
#include <string_view>

namespace dbw {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
bool ParseLogLevel(std::string_view name, LogLevel* out);
void WriteLogLine(LogLevel level, std::string_view text);

namespace internal {
class LogMessage {
 public:
  explicit LogMessage(LogLevel level) : level_(level) {}
  ~LogMessage() { WriteLogLine(level_, stream_.str()); }
  std::ostringstream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};
}  // namespace internal

}  // namespace dbw

#define DBW_LOG(level)                                 \
  if (::dbw::LogLevel::level < ::dbw::GetLogLevel()) { \
  } else                                               \
    ::dbw::internal::LogMessage(::dbw::LogLevel::level).stream()
