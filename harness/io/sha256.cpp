#include "harness/io/sha256.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

namespace dmdbench {
namespace {

struct Hasher {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  Hasher() {
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
      throw std::runtime_error("cannot start a sha-256 digest: openssl failed");
    }
  }
  void update(const void* p, std::size_t n) {
    if (n > 0 && EVP_DigestUpdate(ctx.get(), p, n) != 1) throw std::runtime_error("sha-256 update failed");
  }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx.get(), md, &len) != 1) throw std::runtime_error("sha-256 final failed");
    static const char* digits = "0123456789abcdef";
    std::string out(2 * len, '0');
    for (unsigned i = 0; i < len; ++i) {
      out[2 * i] = digits[md[i] >> 4];
      out[2 * i + 1] = digits[md[i] & 15];
    }
    return out;
  }
};

}  // namespace

std::string sha256_bytes(const void* data, std::size_t size) {
  Hasher h;
  const auto* p = static_cast<const unsigned char*>(data);
  // Chunks keep a huge mapped file from being faulted in as one request.
  for (std::size_t off = 0; off < size; off += (64u << 20)) h.update(p + off, std::min<std::size_t>(64u << 20, size - off));
  return h.hex();
}

std::string sha256_file(const std::string& path) {
  std::unique_ptr<FILE, decltype(&std::fclose)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw std::runtime_error(fmt::format("cannot open file {}: {}", path, std::strerror(errno)));
  Hasher h;
  std::vector<unsigned char> buf(1u << 20);
  for (;;) {
    std::size_t n = std::fread(buf.data(), 1, buf.size(), f.get());
    h.update(buf.data(), n);
    if (n < buf.size()) {
      if (std::ferror(f.get())) throw std::runtime_error(fmt::format("cannot read file {}: read error", path));
      break;
    }
  }
  return h.hex();
}

}  // namespace dmdbench
