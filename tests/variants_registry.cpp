// The variant registry and configuration resolution (no LibTorch).
#include <gtest/gtest.h>

#include <map>

#include "ablations/variants.h"
#include "harness/experiment/dataset_spec.h"

using namespace dmdbench;

TEST(Variants, RegistryOrderAndNames) {
  std::vector<std::string> names;
  for (const auto& v : ablations::registry()) names.push_back(v.name);
  const std::vector<std::string> table3 = {"t3-full",      "t3-no-heterogd", "t3-no-ca",
                                           "t3-fd-homogd", "t3-fd-only",     "t3-none"};
  const std::vector<std::string> design = {"dmd",         "no-decoupling", "fixed-edges", "homo-only",
                                           "hetero-only", "no-distill",    "mult"};
  std::vector<std::string> all = design;
  all.insert(all.end() - 1, table3.begin(), table3.end());  // the Table 3 rows sit before the baseline
  EXPECT_EQ(names, all);
  // "all" keeps its meaning (the design's variants and the baseline); the paper's table is asked for by name.
  EXPECT_EQ(ablations::parse_variant_list("all"), design);
  EXPECT_EQ(ablations::parse_variant_list("paper-table3"), table3);
  EXPECT_EQ(ablations::parse_variant_list("mult,dmd"), (std::vector<std::string>{"mult", "dmd"}));
}

TEST(Variants, UnknownOrDuplicateVariantIsRefusedByName) {
  try {
    ablations::parse_variant_list("dmd,no-such");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown variant 'no-such'"), std::string::npos);
  }
  EXPECT_THROW(ablations::parse_variant_list("dmd,dmd"), ConfigError);
  EXPECT_THROW(ablations::parse_variant_list(""), ConfigError);
}

TEST(Variants, EachVariantChangesExactlyItsKeys) {
  const Config base = ablations::resolve_config("mosi", "dmd", "paper", {});
  auto diff = [&](const std::string& v) {
    const Config c = ablations::resolve_config("mosi", v, "paper", {});
    std::vector<std::string> keys;
    for (auto it = base.json().begin(); it != base.json().end(); ++it)
      if (c.json().at(it.key()) != it.value()) keys.push_back(it.key());
    return keys;
  };
  EXPECT_EQ(diff("no-decoupling"), std::vector<std::string>{"decouple"});
  EXPECT_EQ(diff("fixed-edges"), std::vector<std::string>{"learn_edges"});
  EXPECT_EQ(diff("homo-only"), std::vector<std::string>{"use_hetero_gd"});
  EXPECT_EQ(diff("hetero-only"), std::vector<std::string>{"use_homo_gd"});
  EXPECT_EQ(diff("no-distill"), (std::vector<std::string>{"use_homo_gd", "use_hetero_gd"}));
  // The paper's Table 3 rows from the same switches (key order: the configuration table's).
  EXPECT_EQ(diff("t3-full"), std::vector<std::string>{});
  EXPECT_EQ(diff("t3-no-heterogd"), std::vector<std::string>{"use_hetero_gd"});
  EXPECT_EQ(diff("t3-no-ca"), std::vector<std::string>{"cross_modal_attention"});
  EXPECT_EQ(diff("t3-fd-homogd"), (std::vector<std::string>{"cross_modal_attention", "use_hetero_gd"}));
  EXPECT_EQ(diff("t3-fd-only"),
            (std::vector<std::string>{"cross_modal_attention", "use_homo_gd", "use_hetero_gd"}));
  EXPECT_EQ(diff("t3-none"),
            (std::vector<std::string>{"decouple", "cross_modal_attention", "use_homo_gd", "use_hetero_gd"}));
  // Rows 1 and 2 are the configurations of dmd and homo-only.
  auto json_of = [](const std::string& v) {
    return ablations::resolve_config("mosi", v, "paper", {}).json();
  };
  EXPECT_EQ(json_of("t3-full"), json_of("dmd"));
  EXPECT_EQ(json_of("t3-no-heterogd"), json_of("homo-only"));
  // The CA switch is on by default and DMD's only: MulT has no heterogeneous path to switch.
  EXPECT_TRUE(reference_config("mosi", "dmd").flag("cross_modal_attention"));
  EXPECT_FALSE(reference_config("mosi", "mult").has("cross_modal_attention"));
}

TEST(Variants, EachVariantNamesItsPlaceInThePaper) {
  const std::map<std::string, int> rows = {
      {"dmd", 1},      {"homo-only", 2},    {"t3-full", 1},    {"t3-no-heterogd", 2},
      {"t3-no-ca", 3}, {"t3-fd-homogd", 4}, {"t3-fd-only", 5}, {"t3-none", 6}};
  for (const auto& v : ablations::registry()) {
    SCOPED_TRACE(v.name);
    const auto it = rows.find(v.name);
    EXPECT_EQ(v.table3_row, it == rows.end() ? 0 : it->second);
    EXPECT_FALSE(v.paper_row.empty());  // the legend says where it is, or that it is nowhere
    if (v.table3_row > 0) {
      EXPECT_EQ(v.paper_row.rfind("Table 3 row " + std::to_string(v.table3_row) + " (", 0), 0u)
          << v.paper_row;
      // The row's switches are the configuration's.
      const Config c = ablations::resolve_config("mosei", v.name, "paper", {});
      const auto sw = ablations::table3_switches(v.table3_row);
      EXPECT_EQ(c.flag("decouple"), sw.fd);
      EXPECT_EQ(c.flag("use_homo_gd"), sw.homogd);
      EXPECT_EQ(c.flag("cross_modal_attention"), sw.ca);
      EXPECT_EQ(c.flag("use_hetero_gd"), sw.heterogd);
    }
  }
  EXPECT_EQ(ablations::find_variant("no-decoupling").paper_row.rfind("none", 0), 0u);
  EXPECT_THROW(ablations::table3_switches(7), ConfigError);
}

TEST(Config, ReferenceRecipeValues) {
  const Config dmd = reference_config("mosi", "dmd");
  EXPECT_EQ(dmd.integer("d"), 50);
  EXPECT_EQ(dmd.integer("update_epochs"), 10);
  EXPECT_DOUBLE_EQ(dmd.num("learning_rate"), 1e-4);
  EXPECT_DOUBLE_EQ(dmd.num("plateau_factor"), 0.5);
  EXPECT_EQ(dmd.integer("early_stop"), 10);
  const Config mosei = reference_config("mosei", "dmd");
  EXPECT_EQ(mosei.integer("kernel_a"), 1);
  EXPECT_EQ(mosei.integer("kernel_v"), 3);
  EXPECT_DOUBLE_EQ(mosei.num("attn_dropout"), 0.4);
  const Config mult = reference_config("mosei", "mult");
  EXPECT_DOUBLE_EQ(mult.num("learning_rate"), 5e-4);
  EXPECT_EQ(mult.integer("batch_size"), 4);
  EXPECT_EQ(mult.integer("update_epochs"), 8);
  EXPECT_DOUBLE_EQ(mult.num("plateau_factor"), 0.1);
  EXPECT_EQ(mult.integer("plateau_patience"), 20);
  EXPECT_FALSE(mult.has("use_homo_gd"));
}

TEST(Config, OverridesAreTypedAndKeysMustExist) {
  Config c = ablations::resolve_config("mosi", "dmd", "quick", {"learning_rate=0.001", "max_epochs=3",
                                                                 "ortho_per_position=true"});
  EXPECT_DOUBLE_EQ(c.num("learning_rate"), 1e-3);
  EXPECT_EQ(c.integer("max_epochs"), 3);
  EXPECT_TRUE(c.flag("ortho_per_position"));
  EXPECT_THROW(c.set_from_string("no_such_key=1"), ConfigError);
  EXPECT_THROW(c.set_from_string("max_epochs=2.5"), ConfigError);
  EXPECT_THROW(c.set_from_string("learning_rate=abc"), ConfigError);
  EXPECT_THROW(c.set_from_string("learning_rate=nan"), ConfigError);
  EXPECT_THROW(c.set_from_string("decouple=maybe"), ConfigError);
  EXPECT_THROW(c.set_from_string("novalue"), ConfigError);
  EXPECT_THROW(find_profile("huge"), ConfigError);
}

TEST(Config, ProfilesSetScaleAndEpochCap) {
  const Config smoke = ablations::resolve_config("mosi", "dmd", "smoke", {});
  EXPECT_EQ(smoke.integer("max_epochs"), 3);
  EXPECT_EQ(smoke.integer("update_epochs"), 1);
  const Config quick = ablations::resolve_config("mosi", "mult", "quick", {"update_epochs=4"});
  EXPECT_EQ(quick.integer("max_epochs"), 14);
  EXPECT_EQ(quick.integer("update_epochs"), 4);  // an explicit override wins over the profile
  // quick's recipe changes, named: DMD's learning rate x5 for DMD and every DMD variant, early stop after 3 for all;
  // MulT keeps MMSA's learning rate.
  EXPECT_DOUBLE_EQ(quick.num("lr_scale"), 1.0);
  EXPECT_EQ(quick.integer("early_stop"), 3);
  EXPECT_DOUBLE_EQ(learning_rate(quick), 2e-3);  // MulT MOSI 2e-3
  for (const auto& v : ablations::registry()) {
    if (v.model != "dmd") continue;
    const Config c = ablations::resolve_config("mosi", v.name, "quick", {});
    EXPECT_DOUBLE_EQ(learning_rate(c), 5 * 1e-4) << v.name;
    EXPECT_EQ(c.integer("early_stop"), 3) << v.name;
  }
  EXPECT_DOUBLE_EQ(learning_rate(reference_config("mosi", "dmd")), 1e-4);  // lr_scale 1 in the reference
  EXPECT_THROW(ablations::resolve_config("mosi", "dmd", "quick", {"lr_scale=0"}), ConfigError);
  // paper is the reference recipe exactly: only the (synthetic) scale and the cap are set, to their defaults.
  const Config paper = ablations::resolve_config("mosi", "dmd", "paper", {});
  EXPECT_EQ(paper.json(), reference_config("mosi", "dmd").json());
}

TEST(Config, TextEncoderProtocols) {
  // The reference fine-tunes BERT; MMSA's MulT reads the features; the short profiles read the features
  // unless a BERT is given; an explicit override wins, for DMD only.
  EXPECT_EQ(reference_config("mosi", "dmd").str("text_encoder"), "bert-finetune");
  EXPECT_EQ(reference_config("mosi", "mult").str("text_encoder"), "features");
  EXPECT_EQ(ablations::resolve_config("mosi", "dmd", "smoke", {}).str("text_encoder"), "features");
  EXPECT_EQ(ablations::resolve_config("mosi", "dmd", "quick", {}, true).str("text_encoder"), "bert-finetune");
  EXPECT_EQ(ablations::resolve_config("mosi", "mult", "quick", {}, true).str("text_encoder"), "features");
  EXPECT_EQ(ablations::resolve_config("mosi", "dmd", "quick", {"text_encoder=bert-frozen"}, true)
                .str("text_encoder"),
            "bert-frozen");
  EXPECT_EQ(
      ablations::resolve_config("mosi", "mult", "paper", {"text_encoder=bert-frozen"}).str("text_encoder"),
      "features");
  EXPECT_EQ(ablations::resolve_config("mosi", "dmd", "paper", {"text_encoder=features"}).str("text_encoder"),
            "features");
  Config c = reference_config("mosi", "dmd");
  EXPECT_THROW(c.set("text_encoder", std::string("bert")), ConfigError);
  Config mult = reference_config("mosi", "mult");
  EXPECT_THROW(mult.set("text_encoder", std::string("bert-finetune")), ConfigError);
  EXPECT_TRUE(uses_text_model(reference_config("mosi", "dmd")));
  EXPECT_FALSE(uses_text_model(mult));
  EXPECT_NO_THROW(require_text_model(reference_config("mosi", "dmd"), true));
  EXPECT_NO_THROW(require_text_model(mult, false));
  try {
    require_text_model(reference_config("mosei", "dmd"), false);
    FAIL() << "no refusal";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos);
    EXPECT_NE(m.find("needs --bert DIR, a Hugging Face model folder"), std::string::npos) << m;
    EXPECT_NE(m.find("https://huggingface.co/bert-base-uncased"), std::string::npos) << m;
    EXPECT_NE(m.find("--set text_encoder=features runs the frozen-feature protocol instead"),
              std::string::npos);
  }
  EXPECT_EQ(default_profile(parse_dataset_spec("synthetic-mosei")), "quick");
  EXPECT_EQ(default_profile(parse_dataset_spec("mosi:/data/MOSI/aligned_50.pkl")), "paper");
}
