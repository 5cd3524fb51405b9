// The run-ablation parent/worker message format (harness/cli/worker_messages.h): exact lines, round trips,
// and what is not a message.
#include <gtest/gtest.h>

#include "harness/cli/worker_messages.h"

using dmdbench::cli::decode;
using dmdbench::cli::encode;
using dmdbench::cli::WorkerMessage;

TEST(WorkerMessages, EpochLineIsTheDocumentedOne) {
  WorkerMessage m;
  m.event = WorkerMessage::Event::Epoch, m.run = 3, m.epoch = 2, m.max_epochs = 6, m.valid_loss = 0.9312;
  m.seconds = 10.5;
  EXPECT_EQ(encode(m),
            R"(@dmdbench {"event":"epoch","run":3,"epoch":2,"max_epochs":6,"valid_loss":0.9312,"seconds":10.5})");
  const auto back = decode(encode(m));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->event, WorkerMessage::Event::Epoch);
  EXPECT_EQ(back->run, 3);
  EXPECT_EQ(back->epoch, 2);
  EXPECT_EQ(back->max_epochs, 6);
  EXPECT_DOUBLE_EQ(back->valid_loss, 0.9312);
  EXPECT_DOUBLE_EQ(back->seconds, 10.5);
}

TEST(WorkerMessages, DoneCarriesTheSummaryInOrder) {
  WorkerMessage m;
  m.event = WorkerMessage::Event::Done, m.run = 0, m.wall_seconds = 61.25;
  m.summary = {{"mae", 0.93}, {"acc2_non0", 0.817}};
  EXPECT_EQ(encode(m), R"(@dmdbench {"event":"done","run":0,"wall_seconds":61.25,"summary":{"mae":0.93,"acc2_non0":0.817}})");
  const auto back = decode(encode(m));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->summary, m.summary);
  EXPECT_DOUBLE_EQ(back->wall_seconds, 61.25);
}

TEST(WorkerMessages, FailedErrorStaysOneLine) {
  WorkerMessage m;
  m.event = WorkerMessage::Event::Failed, m.run = 7, m.error = "cannot open file x\nsecond line \"quoted\"";
  const std::string line = encode(m);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto back = decode(line);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->event, WorkerMessage::Event::Failed);
  EXPECT_EQ(back->error, m.error);
}

TEST(WorkerMessages, OtherLinesAreNotMessagesAndBadTaggedLinesAreCounted) {
  bool malformed = true;
  EXPECT_FALSE(decode("[W ParallelNative.cpp] warning from a library", &malformed));
  EXPECT_FALSE(malformed);
  for (const char* bad : {"@dmdbench not json", R"(@dmdbench {"event":"epoch","run":1})",
                          R"(@dmdbench {"event":"reboot","run":1})", R"(@dmdbench {"event":"failed","run":"x","error":""})",
                          R"(@dmdbench [1,2])"}) {
    SCOPED_TRACE(bad);
    malformed = false;
    EXPECT_FALSE(decode(bad, &malformed));
    EXPECT_TRUE(malformed);
  }
}
