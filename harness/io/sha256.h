// SHA-256 digests (OpenSSL EVP) as lowercase hex, for dataset provenance.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace dmdbench {

// Digest of a file, read in 1 MiB chunks; throws std::runtime_error naming the path when it cannot be read.
std::string sha256_file(const std::string& path);

// Digest of bytes in memory (e.g. a memory-mapped file).
std::string sha256_bytes(const void* data, std::size_t size);

// Digest of a string, e.g. a canonical parameter string.
inline std::string sha256_string(std::string_view s) { return sha256_bytes(s.data(), s.size()); }

}  // namespace dmdbench
