// The torch-free safetensors parser: well-formed files give the right entries, every kind of broken or
// hostile file gives its one-sentence error, and F16/BF16 decode to hand-computed values.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "harness/io/safetensors.h"
#include "tests/safetensors_support.h"

namespace st = dmdbench::safetensors;
using dmdbench::testing_support::raw_bytes;
using dmdbench::testing_support::RawTensor;
using dmdbench::testing_support::safetensors_file;
using dmdbench::testing_support::safetensors_header;

namespace {

st::Header parse(const std::string& bytes) {
  return st::parse(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size(), "/tmp/x.safetensors");
}

void expect_error(const std::string& bytes, const std::string& part) {
  try {
    parse(bytes);
    ADD_FAILURE() << "no SafetensorsError; expected one containing: " << part;
  } catch (const st::SafetensorsError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(part), std::string::npos) << what;
    EXPECT_EQ(what.rfind("/tmp/x.safetensors: ", 0), 0u) << what;  // names the file first
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

std::vector<float> floats(const std::string& bytes, const st::Entry& e) {
  std::vector<float> out(static_cast<size_t>(e.numel()));
  st::to_float32(e, reinterpret_cast<const std::byte*>(bytes.data()), out.data());
  return out;
}

const std::vector<RawTensor> kTwo = {
    {"a.weight", "F32", {2, 3}, raw_bytes(std::vector<float>{1, -2.5f, 3.25f, 0, 1e-3f, 7})},
    {"a.bias", "F32", {2}, raw_bytes(std::vector<float>{0.5f, -0.5f})}};

}  // namespace

TEST(Safetensors, WellFormedFileGivesEntriesInDataOrderAndMetadata) {
  const std::string bytes = safetensors_file(kTwo, {{"format", "pt"}});
  const st::Header h = parse(bytes);
  ASSERT_EQ(h.tensors.size(), 2u);
  ASSERT_EQ(h.metadata.size(), 1u);
  EXPECT_EQ(h.metadata[0], (std::pair<std::string, std::string>{"format", "pt"}));
  EXPECT_EQ(h.data_start % 8, 0u);  // padded header
  const st::Entry& w = h.tensors[0];
  EXPECT_EQ(w.name, "a.weight");
  EXPECT_EQ(w.dtype, st::DType::F32);
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w.begin, h.data_start);
  EXPECT_EQ(w.end, h.data_start + 24);
  EXPECT_EQ(floats(bytes, w), (std::vector<float>{1, -2.5f, 3.25f, 0, 1e-3f, 7}));
  EXPECT_EQ(h.tensors[1].name, "a.bias");
  EXPECT_EQ(floats(bytes, h.tensors[1]), (std::vector<float>{0.5f, -0.5f}));
}

TEST(Safetensors, HeaderOrderDoesNotMatterTheDataOrderIsReturned) {
  // "b" listed first but stored second, as the Rust crate accepts.
  nlohmann::ordered_json hdr = {{"b", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {4, 8}}}},
                                {"a", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {0, 4}}}}};
  const std::string bytes = safetensors_file(hdr.dump(), raw_bytes(std::vector<float>{1, 2}));
  const st::Header h = parse(bytes);
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "a");
  EXPECT_EQ(floats(bytes, h.tensors[0])[0], 1.0f);
  EXPECT_EQ(h.tensors[1].name, "b");
  EXPECT_EQ(floats(bytes, h.tensors[1])[0], 2.0f);
}

TEST(Safetensors, ScalarsEmptyTensorsAndIntegerDtypes) {
  const std::vector<RawTensor> t = {{"s", "I32", {}, raw_bytes(std::vector<int32_t>{7})},
                                    {"e", "F32", {0, 3}, ""},
                                    {"i", "I64", {2}, raw_bytes(std::vector<int64_t>{-1, int64_t{1} << 40})},
                                    {"m", "BOOL", {3}, std::string("\0\1\1", 3)}};
  const st::Header h = parse(safetensors_file(t));
  ASSERT_EQ(h.tensors.size(), 4u);
  EXPECT_EQ(h.tensors[0].numel(), 1);  // shape [] is a scalar
  EXPECT_EQ(h.tensors[1].numel(), 0);
  EXPECT_EQ(h.tensors[1].begin, h.tensors[1].end);
  EXPECT_EQ(h.tensors[2].dtype, st::DType::I64);
  EXPECT_EQ(h.tensors[3].dtype, st::DType::BOOL);
  EXPECT_EQ(st::dtype_size(st::DType::BF16), 2u);
  EXPECT_STREQ(st::dtype_name(st::DType::BF16), "BF16");
}

TEST(Safetensors, HalfAndBfloat16DecodeToHandComputedValues) {
  // F16: 1, -2, 1365/4096, -1229/4096, 65504 (max), 2^-14 (min normal), 1023*2^-24 (max subnormal),
  // 2^-24 (min subnormal), -0, +inf, -inf.
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x3555, 0xb4cd, 0x7bff, 0x0400,
                                     0x03ff, 0x0001, 0x8000, 0x7c00, 0xfc00};
  const std::vector<float> f16_want = {1.0f,
                                       -2.0f,
                                       1365.0f / 4096,
                                       -1229.0f / 4096,
                                       65504.0f,
                                       std::ldexp(1.0f, -14),
                                       1023 * std::ldexp(1.0f, -24),
                                       std::ldexp(1.0f, -24),
                                       -0.0f,
                                       std::numeric_limits<float>::infinity(),
                                       -std::numeric_limits<float>::infinity()};
  // BF16: 1, -5, 3.140625 (pi), 171/512, 0.00994873046875, 2^-133 (min subnormal), +inf.
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc0a0, 0x4049, 0x3eab, 0x3c23, 0x0001, 0x7f80};
  const std::vector<float> bf16_want = {1.0f,
                                        -5.0f,
                                        3.140625f,
                                        171.0f / 512,
                                        0.00994873046875f,
                                        std::ldexp(1.0f, -133),
                                        std::numeric_limits<float>::infinity()};
  const std::vector<RawTensor> t = {{"h", "F16", {11}, raw_bytes(f16)},
                                    {"b", "BF16", {7}, raw_bytes(bf16)},
                                    {"n", "F16", {1}, raw_bytes(std::vector<uint16_t>{0x7e00})},
                                    {"d", "F64", {2}, raw_bytes(std::vector<double>{0.1, -3.5})}};
  const std::string bytes = safetensors_file(t);
  const st::Header h = parse(bytes);
  const std::vector<float> got_h = floats(bytes, h.tensors[0]), got_b = floats(bytes, h.tensors[1]);
  for (size_t i = 0; i < f16.size(); ++i) {
    EXPECT_EQ(got_h[i], f16_want[i]) << "F16 0x" << std::hex << f16[i];
    EXPECT_EQ(std::signbit(got_h[i]), std::signbit(f16_want[i])) << "F16 0x" << std::hex << f16[i];
  }
  for (size_t i = 0; i < bf16.size(); ++i)
    EXPECT_EQ(got_b[i], bf16_want[i]) << "BF16 0x" << std::hex << bf16[i];
  EXPECT_TRUE(std::isnan(floats(bytes, h.tensors[2])[0]));
  EXPECT_EQ(floats(bytes, h.tensors[3]), (std::vector<float>{0.1f, -3.5f}));  // F64 rounded to float
  // Every F16 bit pattern: finite values round-trip through float exactly (the mantissa fits).
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = st::half_to_float(static_cast<uint16_t>(b));
    if (((b >> 10) & 0x1f) == 0x1f) continue;
    const int e = ((b >> 10) & 0x1f) == 0 ? -24 : static_cast<int>((b >> 10) & 0x1f) - 25;
    const float m =
        ((b >> 10) & 0x1f) == 0 ? static_cast<float>(b & 0x3ff) : static_cast<float>((b & 0x3ff) | 0x400);
    ASSERT_EQ(f, (b & 0x8000 ? -1.0f : 1.0f) * std::ldexp(m, e)) << std::hex << b;
  }
}

TEST(Safetensors, BrokenFilesAreRefusedInOneSentence) {
  const std::string good = safetensors_file(kTwo);
  // truncated: the data ends early, or the file ends inside the length / header
  expect_error(good.substr(0, good.size() - 4),
               "tensor 'a.bias' has data_offsets [24, 32] past the end of the data (28 bytes)");
  expect_error(good.substr(0, 5), "file of 5 bytes is too short to hold a safetensors header");
  expect_error(good.substr(0, 40), "runs past the end of the file (40 bytes)");
  // header length longer than the file / beyond the 100 MB limit
  std::string too_long = good;
  too_long[0] = '\xff';
  too_long[1] = '\xff';
  expect_error(too_long, "header length 65535 runs past the end of the file");
  std::string huge = good;
  huge[5] = '\x01';  // 2^40 + ...
  expect_error(huge, "exceeds the limit of 100000000 bytes");
  // invalid JSON, not an object
  expect_error(safetensors_file("{\"a\": {\"dtype\": \"F32\",", ""), "header is not valid JSON");
  expect_error(safetensors_file("{\"a\": tru}", ""), "header is not valid JSON (error at byte");
  expect_error(safetensors_file("[1, 2]", ""), "header does not start with a JSON object");
  // overlapping, gaps, trailing bytes, end before begin
  nlohmann::ordered_json h = safetensors_header(kTwo);
  h["a.bias"]["data_offsets"] = {20, 28};
  expect_error(safetensors_file(h.dump(), std::string(28, '\0')),
               "the data of tensors 'a.weight' and 'a.bias' overlap");
  h = safetensors_header(kTwo);
  h["a.bias"]["data_offsets"] = {28, 36};
  expect_error(safetensors_file(h.dump(), std::string(36, '\0')),
               "data bytes 24 to 28 before tensor 'a.bias' belong to no tensor");
  expect_error(safetensors_file(safetensors_header(kTwo).dump(), std::string(40, '\0')),
               "the last 8 bytes of the file belong to no tensor");
  h = safetensors_header(kTwo);
  h["a.bias"]["data_offsets"] = {32, 24};
  expect_error(safetensors_file(h.dump(), std::string(32, '\0')),
               "tensor 'a.bias' has data_offsets [32, 24] that end before they begin");
  // byte count not matching shape x dtype size
  h = safetensors_header(kTwo);
  h["a.weight"]["shape"] = {2, 2};
  expect_error(safetensors_file(h.dump(), std::string(32, '\0')),
               "tensor 'a.weight' holds 24 bytes, but shape [2,2] of F32 needs 16");
  h = safetensors_header(kTwo);
  h["a.weight"]["shape"] = {uint64_t{1} << 62, 8};
  expect_error(safetensors_file(h.dump(), std::string(32, '\0')), "too large to exist");
  h["a.weight"]["shape"] = {2, -3};
  expect_error(safetensors_file(h.dump(), std::string(32, '\0')),
               "has a shape entry that is not a non-negative integer");
  // unknown and unsupported dtypes
  h = safetensors_header(kTwo);
  h["a.weight"]["dtype"] = "F7";
  expect_error(safetensors_file(h.dump(), std::string(32, '\0')), "tensor 'a.weight' has unknown dtype 'F7'");
  h["a.weight"]["dtype"] = "F8_E4M3";
  expect_error(safetensors_file(h.dump(), std::string(32, '\0')),
               "has dtype 'F8_E4M3', which is not supported");
  // duplicate names (nlohmann alone would keep the last one)
  const std::string dup =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  expect_error(safetensors_file(dup, std::string(8, '\0')), "tensor name 'a' appears twice in the header");
  // missing fields, bad metadata, deep nesting, control characters in a name
  h = safetensors_header(kTwo);
  h["a.weight"].erase("data_offsets");
  expect_error(safetensors_file(h.dump(), std::string(32, '\0')),
               "tensor 'a.weight' has no \"data_offsets\"");
  expect_error(safetensors_file(safetensors_header({}, {{"n", 1}}).dump(), ""),
               "__metadata__ entry 'n' is not a string");
  expect_error(safetensors_file(R"({"a":{"shape":[[[1]]]}})", ""),
               "header nests deeper than the format allows");
  expect_error(safetensors_file(R"({"x\ny":{"dtype":"Q"}})", ""), "tensor 'x\\x0ay' has unknown dtype 'Q'");
}
