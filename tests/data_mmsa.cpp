// MMSA pickles -> Dataset, on fixtures written by numpy (scripts/make_fixtures.py) and the golden MOSEI file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "harness/data/dataset.h"
#include "harness/io/sha256.h"

using namespace dmdbench;

namespace {

std::string fixture(const std::string& name) { return std::string(DMDBENCH_FIXTURES_DIR) + "/" + name; }
std::string golden_data() { return std::string(DMDBENCH_SHARED_DIR) + "/golden/mosei/data.pkl"; }

template <typename F>
void expect_data_error(F&& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no DataError; expected one mentioning: " << part;
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

double total(const torch::Tensor& t) { return t.sum(torch::kFloat64).item<double>(); }

const NonFiniteCount& count(const Dataset& ds, const std::string& split, const std::string& modality) {
  for (const auto& c : ds.non_finite) {
    if (c.split == split && c.modality == modality) return c;
  }
  throw std::runtime_error("no count for " + split + " " + modality);
}

}  // namespace

TEST(DataMmsa, LoadsAnAlignedPickle) {
  const Dataset ds = load_mmsa(fixture("mmsa_aligned.pkl"), "mosi");
  EXPECT_EQ(ds.name, "mosi:" + fixture("mmsa_aligned.pkl"));
  EXPECT_EQ(ds.family, "mosi");
  EXPECT_EQ(ds.setting, "aligned");
  ASSERT_TRUE(ds.train.text_bert.defined());  // the fixture's text_bert: zeros [n,3,T], read as stored
  EXPECT_EQ(ds.train.text_bert.sizes(), (std::vector<int64_t>{3, 3, 3}));
  EXPECT_EQ(ds.dims().text_bert_len, 3);
  EXPECT_EQ(ds.source_sha256, sha256_file(fixture("mmsa_aligned.pkl")));
  EXPECT_EQ(ds.train.size(), 3);
  EXPECT_EQ(ds.valid.size(), 2);
  EXPECT_EQ(ds.test.size(), 2);
  EXPECT_EQ(ds.train.text.sizes(), (std::vector<int64_t>{3, 3, 768}));
  EXPECT_EQ(ds.train.audio.sizes(), (std::vector<int64_t>{3, 3, 5}));
  EXPECT_EQ(ds.train.vision.sizes(), (std::vector<int64_t>{3, 3, 20}));
  EXPECT_EQ(ds.dims().text, 768);
  EXPECT_EQ(ds.dims().audio, 5);
  EXPECT_EQ(ds.dims().vision, 20);
  for (const Split* s : {&ds.train, &ds.valid, &ds.test}) {
    EXPECT_EQ(s->text.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(s->audio.is_contiguous());
    EXPECT_TRUE(torch::isfinite(s->audio).all().item<bool>()) << s->name;  // -inf became 0
  }
  // make_fixtures.py: sums with -inf counted as 0
  EXPECT_NEAR(total(ds.train.text), 15.9859389, 1e-5);
  EXPECT_NEAR(total(ds.train.audio), -18.4844932, 1e-5);
  EXPECT_NEAR(total(ds.train.vision), 18.0330087, 1e-5);
  EXPECT_NEAR(total(ds.valid.text), 49.74091, 1e-4);
  EXPECT_NEAR(total(ds.test.audio), -3.12278086, 1e-5);
  EXPECT_FLOAT_EQ(ds.train.vision[0][1][0].item<float>(), 0.9912731051445007f);
  EXPECT_FLOAT_EQ(ds.train.audio[0][1][1].item<float>(), 0.6785666942596436f);
  EXPECT_EQ(ds.train.audio[1][2][3].item<float>(), 0.0f);  // was -inf
  EXPECT_FLOAT_EQ(ds.train.labels[1].item<float>(), 2.0f);
  EXPECT_FLOAT_EQ(ds.train.labels[2].item<float>(), -1.6666666269302368f);
  EXPECT_EQ(ds.test.ids, (std::vector<std::string>{"testvid0$_$0", "testvid1$_$1"}));
  EXPECT_EQ(count(ds, "train", "audio").neg_inf, 1);
  EXPECT_EQ(count(ds, "test", "audio").neg_inf, 2);
  EXPECT_EQ(count(ds, "valid", "audio").neg_inf, 0);
  EXPECT_EQ(count(ds, "train", "text").source_dtype, "float32");
  EXPECT_EQ(ds.non_finite.size(), 12u);  // 3 splits x (text, audio, vision, labels)
  // the padded first frame is exactly zero everywhere
  EXPECT_EQ(ds.train.text[0][0].abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(ds.train.audio[0][0].abs().sum().item<float>(), 0.0f);
}

TEST(DataMmsa, LoadsAnUnalignedProtocol2PickleWithFloat64AndFortranOrder) {
  const Dataset ds = load_mmsa(fixture("mmsa_unaligned_p2.pkl"), "mosi");
  EXPECT_EQ(ds.setting, "unaligned");
  EXPECT_EQ(ds.train.text.sizes(), (std::vector<int64_t>{2, 3, 768}));
  EXPECT_EQ(ds.train.audio.sizes(), (std::vector<int64_t>{2, 5, 5}));
  EXPECT_EQ(ds.train.vision.sizes(), (std::vector<int64_t>{2, 4, 20}));
  EXPECT_EQ(ds.test.size(), 1);
  EXPECT_EQ(ds.train.audio.scalar_type(), torch::kFloat32);
  EXPECT_EQ(count(ds, "train", "audio").source_dtype, "float64");
  EXPECT_EQ(count(ds, "train", "labels").source_dtype, "float64");
  EXPECT_EQ(count(ds, "valid", "audio").neg_inf, 1);
  EXPECT_NEAR(total(ds.train.text), -28.7602761, 1e-4);
  EXPECT_NEAR(total(ds.train.audio), 4.13860074, 1e-5);
  EXPECT_NEAR(total(ds.valid.vision), 8.80452922, 1e-5);  // Fortran order in the file
  EXPECT_FLOAT_EQ(ds.train.vision[0][1][0].item<float>(), 0.5179628729820251f);
  EXPECT_FLOAT_EQ(ds.train.vision[0][1][2].item<float>(), 0.6354647278785706f);
  EXPECT_FLOAT_EQ(ds.valid.audio[0][1][0].item<float>(), static_cast<float>(-1.12789459885554));
  EXPECT_EQ(ds.train.labels.sizes(), (std::vector<int64_t>{2}));  // [n, 1] in the file
  EXPECT_EQ(ds.valid.ids.at(1), "validvid1$_$1");               // object array of str
}

TEST(DataMmsa, RefusesNaNUnlessAskedToZeroIt) {
  expect_data_error([] { load_mmsa(fixture("mmsa_nan.pkl"), "mosi"); },
                    "split 'valid' vision holds non-finite values (2 NaN); refusing the file");
  LoadOptions opts;
  opts.zero_nan = true;
  const Dataset ds = load_mmsa(fixture("mmsa_nan.pkl"), "mosi", opts);
  EXPECT_EQ(count(ds, "valid", "vision").nan, 2);
  EXPECT_EQ(count(ds, "test", "text").nan, 1);
  EXPECT_EQ(count(ds, "train", "text").nan, 0);
  EXPECT_TRUE(torch::isfinite(ds.valid.vision).all().item<bool>());
  EXPECT_EQ(ds.valid.vision[0][1][3].item<float>(), 0.0f);
  EXPECT_NEAR(total(ds.valid.vision), -22.2593204, 1e-5);
}

TEST(DataMmsa, NamesTheWrongKey) {
  expect_data_error([] { load_mmsa(fixture("mmsa_mismatch_n.pkl"), "mosi"); },
                    "split 'train' key 'audio' has 1 samples, expected 2 as key 'text'");
  expect_data_error([] { load_mmsa(fixture("mmsa_mismatch_dim.pkl"), "mosi"); },
                    fixture("mmsa_mismatch_dim.pkl") +
                        ": split 'valid' key 'audio' has shape [1,2,4], expected [1,2,5] as in split 'train'");
  expect_data_error([] { load_mmsa(fixture("mmsa_missing_key.pkl"), "mosi"); }, "split 'test' has no key 'vision'");
}

// Feature widths come from the data (the family names the recipe only): MOSI-width audio and vision read as
// MOSEI; the golden bert-tiny pickle (MOSEI widths) as written by the reference.
TEST(DataMmsa, AnyFeatureWidthsLoad) {
  const FeatureDims d = load_mmsa(fixture("mmsa_aligned.pkl"), "mosei").dims();
  EXPECT_EQ(d.text, 768);
  EXPECT_EQ(d.audio, 5);
  EXPECT_EQ(d.vision, 20);
  const FeatureDims g = load_mmsa(std::string(DMDBENCH_SHARED_DIR) + "/golden/bert-tiny/data.pkl", "mosei").dims();
  EXPECT_EQ(g.text, 768);  // its precomputed `text` features; BERT reads `text_bert`
  EXPECT_EQ(g.audio, 74);
  EXPECT_EQ(g.vision, 35);
}

TEST(DataMmsa, FileErrorsAreOneSentence) {
  expect_data_error([] { load_mmsa(fixture("nope.pkl"), "mosi"); },
                    "cannot open file " + fixture("nope.pkl") + ": No such file or directory");
  expect_data_error([] { load_mmsa(fixture("truncated_arrays.pkl"), "mosi"); }, "truncated pickle");
  expect_data_error([] { load_mmsa(fixture("hostile_system.pkl"), "mosi"); },
                    "refusing pickle global 'posix.system'");
  expect_data_error([] { load_mmsa(fixture("plain_p4.pkl"), "mosi"); }, "the file has no split 'train'");
  expect_data_error([] { load_mmsa(fixture("mmsa_aligned.pkl"), "iemocap"); }, "unknown dataset family 'iemocap'");
  try {
    load_mmsa(fixture("wrong_magic.pkl"), "mosi");
    ADD_FAILURE();
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

TEST(DataOpen, ParsesDatasetSpecs) {
  Dataset a = open_dataset(fixture("mmsa_mosei_p5.pkl"));  // bare path: audio dim 74 -> mosei
  EXPECT_EQ(a.family, "mosei");
  EXPECT_EQ(a.dims().audio, 74);
  EXPECT_NEAR(total(a.train.audio), 19.5734623, 1e-4);  // protocol 5: _frombuffer + BYTEARRAY8
  Dataset b = open_dataset("mosi:" + fixture("mmsa_aligned.pkl"));
  EXPECT_EQ(b.family, "mosi");
  EXPECT_EQ(b.name, "mosi:" + fixture("mmsa_aligned.pkl"));
  Dataset c = open_dataset(fixture("mmsa_aligned.pkl"));
  EXPECT_EQ(c.family, "mosi");
  Dataset s = open_dataset("synthetic-mosi@0.01", {}, 1.0, 7);
  EXPECT_EQ(s.name, "synthetic-mosi");
  EXPECT_EQ(s.train.size(), 13);  // round(0.01 * 1284)
  EXPECT_EQ(s.valid.size(), 8);   // at least 8
  Dataset s2 = open_dataset("synthetic-mosei", {}, 0.001, 7);
  EXPECT_EQ(s2.family, "mosei");
  EXPECT_EQ(s2.train.size(), 16);
  EXPECT_EQ(s2.dims().audio, 74);
  expect_data_error([] { open_dataset("synthetic-iemocap"); }, "unknown synthetic dataset 'synthetic-iemocap'");
  expect_data_error([] { open_dataset("synthetic-mosi@x"); }, "has scale 'x', expected a number in (0, 1]");
  expect_data_error([] { open_dataset("synthetic-mosi@2"); }, "has scale '2'");
  EXPECT_EQ(open_dataset("mosei:" + fixture("mmsa_aligned.pkl")).dims().audio, 5);  // widths from the data
  const Dataset& cds = c;
  expect_data_error([&] { cds.split("dev"); }, "unknown split 'dev', expected train, valid or test");
  EXPECT_EQ(&cds.split("valid"), &cds.valid);
}

TEST(DataMmsa, LoadsTheGoldenMoseiFile) {
  const Dataset ds = load_mmsa(golden_data(), "mosei");
  EXPECT_EQ(ds.train.size(), 4);
  EXPECT_EQ(ds.valid.size(), 8);
  EXPECT_EQ(ds.test.size(), 16);
  EXPECT_EQ(ds.test.text.sizes(), (std::vector<int64_t>{16, 50, 768}));
  EXPECT_EQ(ds.test.audio.sizes(), (std::vector<int64_t>{16, 50, 74}));
  EXPECT_EQ(ds.test.vision.sizes(), (std::vector<int64_t>{16, 50, 35}));
  EXPECT_EQ(ds.setting, "aligned");
  // labels as numpy prints them
  const float expected[16] = {0.f, 0.f, 0.f, -2.f, -2.6666667f, -2.6666667f, -0.33333334f, 2.6666667f,
                              1.f, 1.f, 0.6666667f, 1.6666666f, -1.f, -1.3333334f, -0.f, 0.33333334f};
  for (int i = 0; i < 16; ++i) EXPECT_FLOAT_EQ(ds.test.labels[i].item<float>(), expected[i]) << i;
  EXPECT_EQ(ds.test.ids.at(2), "test_2$_$2");
  // padded frames per test sample (rows all zero), as counted with numpy
  const int64_t padded[16] = {0, 4, 0, 4, 0, 5, 2, 2, 3, 2, 2, 5, 4, 4, 5, 2};
  for (int i = 0; i < 16; ++i) {
    const int64_t zero_rows = ds.test.text[i].abs().sum(1).eq(0).sum().item<int64_t>();
    EXPECT_EQ(zero_rows, padded[i]) << i;
    EXPECT_EQ(ds.test.audio[i].abs().sum(1).eq(0).sum().item<int64_t>(), padded[i]) << i;
  }
  EXPECT_NEAR(total(ds.test.text), 359.0816329709328, 1e-3);
  EXPECT_NEAR(total(ds.test.audio), 44.752050291550404, 1e-4);
  EXPECT_NEAR(total(ds.test.vision), 122.88932602602654, 1e-4);
  for (const auto& c : ds.non_finite) EXPECT_EQ(c.nan + c.neg_inf + c.pos_inf, 0) << c.split << " " << c.modality;
  EXPECT_EQ(ds.source_sha256, sha256_file(golden_data()));
}

namespace {

// A protocol-3 MMSA pickle whose arrays go through numpy's _frombuffer (C or Fortran order), written here so
// that the arrays are large enough to be converted in several parallel chunks.
class PickleWriter {
 public:
  std::string out = std::string("\x80\x03", 2);
  void op(const std::string& s) { out += s; }
  void str(const std::string& s) {
    out += 'X';
    u32(static_cast<uint32_t>(s.size()));
    out += s;
  }
  void array(const torch::Tensor& ref, bool fortran, torch::ScalarType dtype) {
    torch::Tensor t = ref.to(dtype);
    if (fortran) {
      std::vector<int64_t> rev(static_cast<std::size_t>(t.dim()));
      for (int64_t k = 0; k < t.dim(); ++k) rev[static_cast<std::size_t>(k)] = t.dim() - 1 - k;
      t = t.permute(rev);
    }
    t = t.contiguous();
    op("cnumpy.core.numeric\n_frombuffer\n(B");
    u32(static_cast<uint32_t>(t.numel() * t.element_size()));
    out.append(static_cast<const char*>(t.data_ptr()), static_cast<std::size_t>(t.numel() * t.element_size()));
    op("cnumpy\ndtype\n");
    str(dtype == torch::kFloat64 ? "f8" : "f4");
    op("\x85R(");
    for (int64_t d : ref.sizes()) {
      out += 'J';
      u32(static_cast<uint32_t>(d));
    }
    op("t");
    str(fortran ? "F" : "C");
    op("tR");
  }

 private:
  void u32(uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
};

}  // namespace

TEST(DataMmsa, FortranAndFloat64ConvertedExactlyAcrossParallelChunks) {
  torch::manual_seed(3);
  const int64_t sizes[3] = {40, 8, 8};
  const char* names[3] = {"train", "valid", "test"};
  std::vector<torch::Tensor> text, audio, vision, labels;
  PickleWriter w;
  w.op("}(");
  for (int s = 0; s < 3; ++s) {
    text.push_back(torch::randn({sizes[s], 50, 768}));
    audio.push_back(torch::randn({sizes[s], 50, 5}, torch::kFloat64));
    vision.push_back(torch::randn({sizes[s], 50, 20}, torch::kFloat64));
    labels.push_back(torch::randint(-9, 10, {sizes[s]}).div(3.0).to(torch::kFloat32));
    w.str(names[s]);
    w.op("}(");
    w.str("text"), w.array(text[s], true, torch::kFloat32);
    w.str("audio"), w.array(audio[s], false, torch::kFloat64);
    w.str("vision"), w.array(vision[s], true, torch::kFloat64);
    w.str("regression_labels"), w.array(labels[s], false, torch::kFloat32);
    w.op("u");
  }
  w.op("u.");
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("dmdbench_fortran_" + std::to_string(::getpid()) + ".pkl")).string();
  {
    std::ofstream f(path, std::ios::binary);
    f.write(w.out.data(), static_cast<std::streamsize>(w.out.size()));
  }
  const Dataset ds = load_mmsa(path, "mosi");
  std::filesystem::remove(path);
  for (int s = 0; s < 3; ++s) {
    const Split& sp = ds.split(names[s]);
    EXPECT_TRUE(torch::equal(sp.text, text[s])) << names[s];
    EXPECT_TRUE(torch::equal(sp.audio, audio[s].to(torch::kFloat32))) << names[s];
    EXPECT_TRUE(torch::equal(sp.vision, vision[s].to(torch::kFloat32))) << names[s];
    EXPECT_TRUE(torch::equal(sp.labels, labels[s])) << names[s];
    EXPECT_EQ(sp.ids.at(1), std::string(names[s]) + "$_$1");  // no 'id' key: index ids
  }
  EXPECT_EQ(ds.train.text.numel(), 40 * 50 * 768);  // 24 chunks of 65536 elements
}

// The MulT repository's pickles (yaohungt/Multimodal-Transformer, src/dataset.py): 300-d GloVe text, `labels`
// [n,1,1] instead of `regression_labels`, `id` a bytes array [n,3]; values from scripts/make_fixtures.py.
TEST(DataMmsa, ReadsTheMultRepositoryLayout) {
  const Dataset ds = load_mmsa(fixture("mult_mosi_glove.pkl"), "");
  EXPECT_EQ(ds.family, "mosi");  // audio width 5
  EXPECT_EQ(ds.setting, "aligned");
  EXPECT_EQ(ds.dims().text, 300);
  EXPECT_EQ(ds.train.text.sizes(), (std::vector<int64_t>{3, 4, 300}));
  EXPECT_FALSE(ds.train.text_bert.defined());
  EXPECT_NEAR(total(ds.train.text), -36.2812464, 1e-4);
  EXPECT_NEAR(total(ds.train.audio), -8.4646434, 1e-5);  // one -inf counted as 0
  EXPECT_NEAR(total(ds.valid.text), 35.3235771, 1e-4);
  EXPECT_EQ(ds.train.labels.sizes(), (std::vector<int64_t>{3}));
  EXPECT_FLOAT_EQ(ds.train.labels[0].item<float>(), 3.0f);
  EXPECT_FLOAT_EQ(ds.valid.labels[1].item<float>(), -1.3333333730697632f);
  EXPECT_EQ(ds.test.ids, (std::vector<std::string>{"testvid0$_$0$_$1", "testvid1$_$1$_$2"}));
  EXPECT_EQ(count(ds, "train", "audio").neg_inf, 1);
}
