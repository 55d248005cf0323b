// The key of the masking function `hash`: read from a file, or generated (32 random bytes,
// mode 0600) on first start, and the HMAC-SHA256 function built on it.
#pragma once

#include <string>

#include "userspace/common/status.h"
#include "userspace/masking/mask.h"

namespace dbw::agent {

// Loads the key at `path` (creating it when absent) and returns HMAC-SHA256 under it, with the
// pads masking by reference computes the same HMAC with in SQL.
StatusOr<masking::MaskingKey> LoadMaskingHash(const std::string& path);

}  // namespace dbw::agent
