// Batcher: its own seeded permutation, every index once per epoch, drop_last, gathered rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "harness/data/dataset.h"

using namespace dmdbench;

namespace {

Split make_split(int64_t n) {
  Split s;
  s.name = "train";
  s.text = torch::arange(n * 2 * 3, torch::kFloat32).reshape({n, 2, 3});
  s.audio = torch::arange(n * 2 * 1, torch::kFloat32).reshape({n, 2, 1});
  s.vision = torch::arange(n * 2 * 2, torch::kFloat32).reshape({n, 2, 2});
  s.labels = torch::arange(n, torch::kFloat32).div(10);
  for (int64_t i = 0; i < n; ++i) s.ids.push_back(std::to_string(i));
  return s;
}

std::vector<int64_t> epoch_indices(const Batcher& b) {
  std::vector<int64_t> all;
  for (int64_t i = 0; i < b.num_batches(); ++i) {
    const torch::Tensor idx = b.get(i).index;
    all.insert(all.end(), idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + idx.numel());
  }
  return all;
}

}  // namespace

TEST(Batcher, SameSeedSameOrderAndEachEpochDiffers) {
  const Split s = make_split(50);
  Batcher a(s, 8, true, false, 42), b(s, 8, true, false, 42), c(s, 8, true, false, 43);
  a.new_epoch(), b.new_epoch(), c.new_epoch();
  EXPECT_EQ(a.order(), b.order());
  EXPECT_NE(a.order(), c.order());
  const std::vector<int64_t> first = a.order();
  a.new_epoch(), b.new_epoch();
  EXPECT_NE(a.order(), first);
  EXPECT_EQ(a.order(), b.order());
  // the global torch RNG is neither used nor disturbed
  torch::manual_seed(1);
  const torch::Tensor r1 = torch::rand({3});
  torch::manual_seed(1);
  Batcher d(s, 8, true, false, 42);
  d.new_epoch();
  EXPECT_TRUE(torch::equal(torch::rand({3}), r1));
  EXPECT_EQ(d.order(), first);
}

TEST(Batcher, EveryIndexOncePerEpoch) {
  const Split s = make_split(37);
  Batcher b(s, 5, true, false, 7);
  for (int epoch = 0; epoch < 3; ++epoch) {
    b.new_epoch();
    std::vector<int64_t> all = epoch_indices(b);
    ASSERT_EQ(all.size(), 37u);
    std::sort(all.begin(), all.end());
    for (int64_t i = 0; i < 37; ++i) EXPECT_EQ(all[static_cast<std::size_t>(i)], i);
  }
}

TEST(Batcher, DropLastAndBatchSizes) {
  const Split s = make_split(13);
  Batcher keep(s, 4, true, false, 1), drop(s, 4, true, true, 1);
  keep.new_epoch(), drop.new_epoch();
  EXPECT_EQ(keep.num_batches(), 4);
  EXPECT_EQ(drop.num_batches(), 3);
  EXPECT_EQ(keep.get(3).labels.size(0), 1);
  EXPECT_EQ(drop.get(2).labels.size(0), 4);
  EXPECT_EQ(epoch_indices(drop).size(), 12u);
  EXPECT_EQ(Batcher(s, 13, false, true, 1).num_batches(), 1);
  EXPECT_EQ(Batcher(s, 14, false, true, 1).num_batches(), 0);
  EXPECT_EQ(Batcher(s, 14, false, false, 1).num_batches(), 1);
  EXPECT_THROW(keep.get(4), DataError);
  EXPECT_THROW(keep.get(-1), DataError);
  EXPECT_THROW(Batcher(s, 0, false, false, 1), DataError);
}

TEST(Batcher, NoShuffleKeepsFileOrderAndGathersRows) {
  const Split s = make_split(10);
  Batcher b(s, 3, false, false, 99);
  b.new_epoch();
  std::vector<int64_t> expect(10);
  std::iota(expect.begin(), expect.end(), 0);
  EXPECT_EQ(epoch_indices(b), expect);
  Batcher sh(s, 3, true, false, 5);
  sh.new_epoch();
  const Batch batch = sh.get(1);
  EXPECT_EQ(batch.index.scalar_type(), torch::kInt64);
  EXPECT_TRUE(torch::equal(batch.text, s.text.index_select(0, batch.index)));
  EXPECT_TRUE(torch::equal(batch.audio, s.audio.index_select(0, batch.index)));
  EXPECT_TRUE(torch::equal(batch.vision, s.vision.index_select(0, batch.index)));
  EXPECT_TRUE(torch::equal(batch.labels, s.labels.index_select(0, batch.index)));
  EXPECT_EQ(batch.text.sizes(), (std::vector<int64_t>{3, 2, 3}));
  EXPECT_EQ(batch.text.device(), torch::Device(torch::kCPU));
}
