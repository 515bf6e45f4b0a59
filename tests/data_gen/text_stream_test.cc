// TextStream: C4-style JSON-lines shards (plain or gzip), directories, globs, plain text.
#include "models/text_stream.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include "models/text_data.h"
#include "tests/test_util.h"

namespace pmpd::models {
namespace {

std::string Gzip(const std::string& text) {
  uLongf n = compressBound(text.size()) + 64;
  std::string out(n, '\0');
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);  // +16: gzip wrapper
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = text.size();
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = n;
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::vector<std::string> All(TextStream& s) {
  std::vector<std::string> docs;
  std::string t;
  while (true) {
    auto more = s.Next(&t);
    EXPECT_TRUE(more.ok()) << more.status();
    if (!more.ok() || !*more) break;
    docs.push_back(t);
  }
  return docs;
}

TEST(TextStreamTest, DirectoryOfShardsInNameOrderWithBadLinesCounted) {
  const std::string dir = testing::MakeTempDir("stream_dir");
  testing::WriteFile(dir + "/c4-train.00001-of-00002.json.gz",
                     Gzip("{\"text\": \"c\"}\nnot json\n{\"text\": \"d\"}"));
  testing::WriteFile(dir + "/c4-train.00000-of-00002.json",
                     "{\"text\": \"a\", \"url\": \"u\"}\n\n{\"text\": \" \"}\n"
                     "{\"text\": \"b\"}\n");
  testing::WriteFile(dir + "/README.md", "ignored");
  auto s = TextStream::Open(dir);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->files().size(), 2u);
  EXPECT_EQ(All(**s), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ((*s)->malformed_lines(), 1);
  EXPECT_EQ((*s)->empty_texts(), 1);
  // A glob picks the same files.
  auto g = TextStream::Open(dir + "/c4-train.*");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(All(**g).size(), 4u);
}

// Issue 17: a NUL byte inside a line (gzgets stops there) glued the rest of that line to the next
// one, so the next valid document was lost. Now the damaged line alone is malformed, in plain and
// gzip files, and a last line without a newline still counts.
TEST(TextStreamTest, ANulByteSpoilsOnlyItsOwnLine) {
  const std::string dir = testing::MakeTempDir("stream_nul");
  const std::string text = std::string("{\"text\": \"a\"}\n{\"text\": \"b") + '\0' +
                           "c\"}\n{\"text\": \"d\"}\n{\"text\": \"e\"}";
  testing::WriteFile(dir + "/x.json", text);
  testing::WriteFile(dir + "/y.json.gz", Gzip(text));
  for (const char* f : {"/x.json", "/y.json.gz"}) {
    auto s = TextStream::Open(dir + f);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(All(**s), (std::vector<std::string>{"a", "d", "e"})) << f;
    EXPECT_EQ((*s)->malformed_lines(), 1) << f;
  }
}

TEST(TextStreamTest, SameDocumentsAsReadTextDocsOnRealC4) {
  PMPD_REQUIRE_SHARED("data/c4");
  const std::string file =
      testing::SharedPath("data/c4/c4-validation.00000-of-00008.first800.json.gz");
  auto docs = ReadTextDocs(file);
  auto s = TextStream::Open(testing::SharedPath("data/c4"));
  ASSERT_TRUE(docs.ok() && s.ok());
  const std::vector<std::string> streamed = All(**s);
  EXPECT_EQ(streamed.size(), 800u);
  EXPECT_EQ(streamed, docs->texts);
}

TEST(TextStreamTest, PlainTextSplitsAtEndOfTextMarkers) {
  const std::string dir = testing::MakeTempDir("stream_plain");
  std::string big(200000, 'x');  // longer than one read
  testing::WriteFile(dir + "/stories.txt",
                     " one <|endoftext|>\n<|endoftext|>two\n<|endoftext|>" + big + "\n");
  auto s = TextStream::Open(dir + "/stories.txt");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(All(**s), (std::vector<std::string>{"one", "two", big}));
  EXPECT_EQ((*s)->empty_texts(), 1);
}

TEST(TextStreamTest, ErrorsNameTheFile) {
  const std::string dir = testing::MakeTempDir("stream_bad");
  EXPECT_EQ(TextStream::Open(dir + "/nothing*.json").status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(TextStream::Open(dir).status().message().find("no .json"), std::string::npos);
  std::string gz = Gzip(std::string(5000, 'a') + "\n{\"text\": \"b\"}\n");
  testing::WriteFile(dir + "/cut.json.gz", gz.substr(0, gz.size() - 12));
  auto s = TextStream::Open(dir + "/cut.json.gz");
  ASSERT_TRUE(s.ok());
  std::string t;
  absl::Status st;
  for (int i = 0; i < 10 && st.ok(); ++i) {
    auto more = (*s)->Next(&t);
    if (!more.ok())
      st = more.status();
    else if (!*more)
      break;
  }
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_NE(st.message().find("cut.json.gz: corrupt gzip data"), std::string::npos) << st;
}

}  // namespace
}  // namespace pmpd::models
