// The restricted unpickler on pickles written by real Python/numpy (scripts/make_fixtures.py) and on crafted bytes.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>

#include "harness/io/pickle.h"

namespace pk = dmdbench::pickle;

namespace {

std::string fixture(const std::string& name) { return std::string(DMDBENCH_FIXTURES_DIR) + "/" + name; }

pk::Value load_fixture(const std::string& name) { return pk::load_file(fixture(name), pk::GlobalPolicy::numpy()); }

pk::Value loads_str(const std::string& bytes, const pk::GlobalPolicy& policy = pk::GlobalPolicy::numpy()) {
  auto keep = std::make_shared<std::string>(bytes);
  return pk::loads(reinterpret_cast<const std::byte*>(keep->data()), keep->size(), keep, policy);
}

// Expects a PickleError whose message contains `part`.
template <typename F>
void expect_error(F&& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no PickleError; expected one mentioning: " << part;
  } catch (const pk::PickleError& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

template <typename T>
T element(const pk::NdArray& a, int64_t i) {
  T x;
  std::memcpy(&x, a.data + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return x;
}

const pk::Value& at(const pk::Value& d, const char* key) {
  const pk::Value* v = d.find(key);
  if (!v) throw std::runtime_error(std::string("missing key ") + key);
  return *v;
}

}  // namespace

class PicklePlain : public ::testing::TestWithParam<int> {};

TEST_P(PicklePlain, BuildsEveryPlainValue) {
  pk::Value v = load_fixture("plain_p" + std::to_string(GetParam()) + ".pkl");
  const auto& ints = at(v, "ints").list();
  const int64_t expected[] = {0,         1,          -1, 255, 256, 65535, 65536, -2147483648LL, 2147483648LL,
                              INT64_MAX, INT64_MIN};
  ASSERT_EQ(ints.size(), 11u);
  for (std::size_t i = 0; i < ints.size(); ++i) EXPECT_EQ(ints[i].integer(), expected[i]) << i;
  const auto& floats = at(v, "floats").list();
  EXPECT_EQ(floats[0].number(), 0.5);
  EXPECT_EQ(floats[1].number(), -1.25e-3);
  EXPECT_EQ(floats[2].number(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(floats[3].number(), -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(at(v, "nan").number()));
  EXPECT_EQ(at(v, "str").str(), "h\xc3\xa9llo \xe2\x9c\x93");
  EXPECT_EQ(at(v, "long_str").str(), std::string(300, 'x'));
  const auto& b = std::get<pk::Bytes>(at(v, "bytes").v);
  ASSERT_EQ(b.size, 3u);
  EXPECT_EQ(std::memcmp(b.data, "\x00\x01\xff", 3), 0);
  EXPECT_EQ(std::get<pk::Bytes>(at(v, "empty_bytes").v).size, 0u);
  const auto& ba = std::get<pk::Bytes>(at(v, "bytearray").v);
  ASSERT_EQ(ba.size, 2u);
  EXPECT_EQ(std::memcmp(ba.data, "ab", 2), 0);
  EXPECT_TRUE(at(v, "none").is_none());
  const auto& bools = at(v, "bools").tuple().items;
  EXPECT_EQ(std::get<bool>(bools[0].v), true);
  EXPECT_EQ(std::get<bool>(bools[1].v), false);
  const auto& t = at(v, "tuple").tuple().items;
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[1].tuple().items[1].integer(), 3);
  EXPECT_EQ(at(t[2].list()[1], "k").str(), "v");
  EXPECT_EQ(at(v, "set").list().at(0).integer(), 3);
  EXPECT_EQ(at(v, "frozenset").list().at(0).integer(), 4);
  const auto& shared = at(v, "shared").list();  // one list referenced twice through the memo
  ASSERT_EQ(shared.size(), 2u);
  EXPECT_EQ(shared[1].list().size(), 2u);
  EXPECT_EQ(shared[1].list()[1].integer(), 2);
  const auto& big = at(v, "big_list").list();  // several APPENDS batches
  ASSERT_EQ(big.size(), 1500u);
  EXPECT_EQ(big[1499].integer(), 1499);
  const auto& many = at(v, "dict_many").dict();  // several SETITEMS batches, order kept
  ASSERT_EQ(many.size(), 1200u);
  EXPECT_EQ(many[1100].first.str(), "1100");
  EXPECT_EQ(many[1100].second.integer(), 1100);
}

INSTANTIATE_TEST_SUITE_P(Pickle, PicklePlain, ::testing::Values(2, 4, 5));

class PickleArrays : public ::testing::TestWithParam<int> {};

TEST_P(PickleArrays, BuildsNumpyArraysOfEveryDtype) {
  const std::string name = "arrays_p" + std::to_string(GetParam()) + ".pkl";
  pk::MappedFile file = pk::map_file(fixture(name));
  pk::Value v = pk::loads(file.data, file.size, file.owner, pk::GlobalPolicy::numpy());

  const auto& f4 = at(v, "f4").array();
  EXPECT_EQ(f4.dtype, pk::DType::Float32);
  EXPECT_EQ(f4.shape, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_FALSE(f4.fortran_order);
  double sum = 0;
  for (int64_t i = 0; i < f4.numel(); ++i) sum += element<float>(f4, i);
  EXPECT_EQ(sum, 138.0);  // make_fixtures.py: arrays f4 sum
  if (GetParam() != 2) {  // protocols 4 and 5 carry the bytes inline: the array is a view of the file
    EXPECT_GE(f4.data, file.data);
    EXPECT_LE(f4.data + f4.nbytes, file.data + file.size);
  }

  const auto& f8 = at(v, "f8").array();
  EXPECT_EQ(f8.dtype, pk::DType::Float64);
  EXPECT_EQ(element<double>(f8, 1), -2.25);
  EXPECT_EQ(element<double>(f8, 2), 1e-300);

  const auto& fo = at(v, "fortran").array();  // [[0,1,2],[3,4,5]] stored column-major
  EXPECT_TRUE(fo.fortran_order);
  EXPECT_EQ(fo.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(element<float>(fo, 1), 3.0f);  // storage order: (0,0), (1,0), (0,1), ...
  EXPECT_EQ(element<float>(fo, 2), 1.0f);
  const auto& fo3 = at(v, "fortran3").array();
  EXPECT_TRUE(fo3.fortran_order);
  EXPECT_EQ(element<double>(fo3, 1 + 2 * 2 + 3 * 6), 23.0);  // [1,2,3] at 1 + 2*2 + 3*(2*3)

  EXPECT_EQ(element<int64_t>(at(v, "i8").array(), 0), -(int64_t{1} << 40));
  EXPECT_EQ(at(v, "i4").array().dtype, pk::DType::Int32);
  EXPECT_EQ(element<int32_t>(at(v, "i4").array(), 0), -5);
  EXPECT_EQ(element<uint8_t>(at(v, "u1").array(), 1), 200);
  const auto& b1 = at(v, "b1").array();
  EXPECT_EQ(b1.dtype, pk::DType::Bool);
  EXPECT_EQ(b1.nbytes, 3u);

  EXPECT_EQ(at(v, "scalar_f4").number(), 1.5);
  EXPECT_TRUE(at(v, "scalar_f4").array().shape.empty());
  EXPECT_EQ(at(v, "scalar_i8").integer(), -7);

  const auto& obj = at(v, "obj").list();
  ASSERT_EQ(obj.size(), 2u);
  EXPECT_EQ(obj[1].str(), "bc");
  const auto& u = at(v, "U").list();
  ASSERT_EQ(u.size(), 2u);
  EXPECT_EQ(u[0].str(), "ab");
  EXPECT_EQ(u[1].str(), "c\xc3\xa9");
  const auto& s = at(v, "S").list();
  EXPECT_EQ(s[0].str(), "x");
  EXPECT_EQ(s[1].str(), "yz");

  const auto& sp = at(v, "special").array();
  EXPECT_EQ(element<float>(sp, 1), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(element<float>(sp, 2)));
  EXPECT_EQ(at(v, "empty").array().shape, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(at(v, "empty").array().nbytes, 0u);

  EXPECT_EQ(at(v, "f2").type_name(), "object 'numpy array of unsupported dtype '<f2''");
  EXPECT_EQ(at(v, "big_endian").type_name(), "object 'numpy array of unsupported dtype '>i4''");
  expect_error([&] { at(v, "f2").array(); }, "expected a numpy array, got object");
}

INSTANTIATE_TEST_SUITE_P(Pickle, PickleArrays, ::testing::Values(2, 4, 5));

TEST(PickleNumpy, AcceptsTheNumpy2Spelling) {
  pk::Value v = load_fixture("numpy2_spelling.pkl");
  const auto& x = at(v, "x").array();
  EXPECT_EQ(x.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(element<float>(x, 2), 2.0f);
  EXPECT_EQ(at(v, "s").number(), 2.5);
}

TEST(PickleSafety, RefusesOsSystemAndRunsNothing) {
  const std::string marker = "DMDBENCH_PICKLE_MARKER";
  std::filesystem::remove(marker);
  expect_error([] { load_fixture("hostile_system.pkl"); },
               "refusing pickle global 'posix.system': only numpy arrays and plain data are allowed");
  expect_error([] { load_fixture("hostile_eval_p4.pkl"); }, "refusing pickle global 'builtins.eval'");
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(PickleSafety, ReferenceOnlyGlobalCannotBeCalled) {
  // numpy.ndarray may be an argument of _reconstruct, but not called: c numpy\nndarray\n ) R .
  expect_error([] { loads_str("\x80\x02" "cnumpy\nndarray\n)R."); },
               "pickle global 'numpy.ndarray' may only appear as a value, not be called");
}

TEST(PickleErrors, WrongMagicAndTruncation) {
  expect_error([] { load_fixture("wrong_magic.pkl"); }, "not a pickle of protocol 2 to 5: the first byte is 0x50, expected 0x80 (this looks like a zip archive)");
  expect_error([] { load_fixture("truncated_arrays.pkl"); }, "truncated pickle");
  expect_error([] { pk::load_file(fixture("no_such_file.pkl"), pk::GlobalPolicy::numpy()); },
               "cannot open file " + fixture("no_such_file.pkl") + ": No such file or directory");
  expect_error([] { loads_str(""); }, "truncated pickle: the input is empty");
  expect_error([] { loads_str("\x80\x04K\x01"); }, "truncated pickle: no STOP opcode");
}

TEST(PickleErrors, CraftedBadInput) {
  expect_error([] { loads_str("\x80\x02."); }, "pickle stack underflow at STOP");
  expect_error([] { loads_str(std::string("\x80\x02h\x05.", 5)); }, "pickle memo has no entry 5");
  expect_error([] { loads_str("\x80\x02" "e."); }, "pickle APPENDS at offset 2 has no MARK");
  expect_error([] { loads_str("\x80\x06N."); }, "unsupported pickle protocol 6");
  expect_error([] { loads_str("\x80\x02\xff."); }, "bad pickle opcode 0xff at offset 2");
  // lengths far beyond the input
  expect_error([] { loads_str(std::string("\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x00\x10", 11)); },
               "truncated pickle: BINUNICODE8 needs 1152921504606846976 bytes");
  expect_error([] { loads_str(std::string("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xffN.", 13)); },
               "truncated pickle: FRAME of 18446744073709551615 bytes");
  expect_error([] { loads_str(std::string("\x80\x02\x8b\xff\xff\xff\x7f", 7)); }, "truncated pickle: LONG4");
  expect_error([] { loads_str(std::string("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.", 14)); },
               "does not fit in 64 bits");
  expect_error([] { loads_str("\x80\x02P1\n."); }, "no persistent loader was given");
  expect_error([] { loads_str("\x80\x05\x97."); }, "out-of-band buffer");
  // an array whose shape needs more bytes than it has: _frombuffer(b'abcd', dtype('f4'), (2,), 'C')
  std::string frombuffer = std::string("\x80\x02") + "cnumpy.core.numeric\n_frombuffer\n(" + "C\x04" + "abcd" +
                           "cnumpy\ndtype\n" + std::string("X\x02\x00\x00\x00", 5) + "f4" + "\x85R" + "K\x02\x85" +
                           std::string("X\x01\x00\x00\x00", 5) + "C" + "tR.";
  expect_error([&] { loads_str(frombuffer); }, "numpy array of shape [2] and dtype '|f4' needs 8 bytes, got 4");
}

TEST(PickleErrors, DeepNestingIsRefused) {
  std::string p = "\x80\x02";
  for (int i = 0; i < 300; ++i) p += "]";
  for (int i = 0; i < 299; ++i) p += "a";
  p += ".";
  expect_error([&] { loads_str(p); }, "pickle nests containers deeper than 256 levels");
}

TEST(PickleErrors, ExpansionBombIsRefused) {
  // L = [0]*1000 memoized, then a list holding L 100000 times: gigabytes if every reference were copied.
  std::string p("\x80\x02]q\x00(", 6);
  for (int i = 0; i < 1000; ++i) p += std::string("K\x00", 2);
  p += "e]";
  p += "(";
  for (int i = 0; i < 100000; ++i) p += std::string("h\x00", 2);
  p += "e.";
  expect_error([&] { loads_str(p); }, "pickle expands past");
}

TEST(PickleValue, AccessorsNameTheExpectedType) {
  pk::Value v = loads_str("\x80\x02K\x05.");
  EXPECT_EQ(v.integer(), 5);
  EXPECT_EQ(v.number(), 5.0);
  expect_error([&] { v.str(); }, "expected a str, got int");
  expect_error([&] { v.dict(); }, "expected a dict, got int");
  EXPECT_EQ(v.find("x"), nullptr);
}

TEST(PicklePolicy, CustomCallablesAndPersistentIds) {
  pk::GlobalPolicy policy;
  policy.allow_callable("mod.make", [](const pk::List& args) { return pk::Value{args.at(0).integer() * 2}; });
  policy.set_description("test objects");
  EXPECT_EQ(loads_str("\x80\x02" "cmod\nmake\nK\x15\x85R.", policy).integer(), 42);
  expect_error([&] { loads_str("\x80\x02" "cmod\nother\n.", policy); },
               "refusing pickle global 'mod.other': only test objects are allowed");
  auto keep = std::make_shared<std::string>("\x80\x02X\x03\x00\x00\x00keyQ.", 12);
  pk::Value v = pk::loads(reinterpret_cast<const std::byte*>(keep->data()), keep->size(), keep, policy,
                          [](const pk::Value& pid) { return pk::Value{pid.str() + "!"}; });
  EXPECT_EQ(v.str(), "key!");
}

TEST(MappedFile, AFileTruncatedWhileMappedIsDetectedNotACrash) {
  // Map the file, cut it short, then read it: the lost pages would raise SIGBUS; the handler maps zeros there and
  // marks the mapping, so the reader finishes and can refuse what it read.
  namespace fs = std::filesystem;
  const fs::path copy = fs::temp_directory_path() / ("dmd_trunc_" + std::to_string(getpid()) + ".pkl");
  fs::copy_file(fixture("mmsa_aligned.pkl"), copy, fs::copy_options::overwrite_existing);
  pk::MappedFile file = pk::map_file(copy.string());
  ASSERT_GT(file.size, 16384u);
  EXPECT_FALSE(file.truncated());
  ASSERT_EQ(truncate(copy.c_str(), 4096), 0);
  const volatile std::byte* bytes = file.data;
  std::size_t zeros_after_cut = 0;
  for (std::size_t i = 0; i < file.size; i += 512) zeros_after_cut += i >= 4096 && bytes[i] == std::byte{0};
  EXPECT_TRUE(file.truncated());
  EXPECT_EQ(zeros_after_cut, (file.size - 4096 + 511) / 512) << "the lost part reads as zeros";
  // The whole path: a truncated mapped read ends in one sentence.
  fs::copy_file(fixture("mmsa_aligned.pkl"), copy, fs::copy_options::overwrite_existing);
  EXPECT_FALSE(pk::map_file(copy.string()).truncated());
  fs::remove(copy);
}

TEST(MappedFile, AFifoIsRefusedAtOnce) {
  namespace fs = std::filesystem;
  const fs::path fifo = fs::temp_directory_path() / ("dmd_fifo_" + std::to_string(getpid()));
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  expect_error([&] { pk::map_file(fifo.string()); }, "cannot read file " + fifo.string() + ": not a regular file");
  fs::remove(fifo);
}
