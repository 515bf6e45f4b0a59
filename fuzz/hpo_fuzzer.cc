// Fuzz target: pmpd-hypertune's inputs. First byte % 3: 0, the rest is a study journal as is (CRC
// and torn-line handling); 1, the rest's lines re-encoded with correct CRCs here (so the fuzzer
// reaches the record interpretation: header, trials, heartbeats), then the study is resumed,
// reported (CSV, leaderboard, SVG, importance) and asked for a new trial (the TPE sampler on the
// journal's values) which is told a value; 2, the rest is a search-space file.
#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "fuzz/fuzz_util.h"
#include "hpo/crc32.h"
#include "hpo/param_importance.h"
#include "hpo/search_space.h"
#include "hpo/study.h"
#include "hpo/study_report.h"
#include "models/file_util.h"

using namespace pmpd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Bytes in(data, size);
  const int mode = in.Read<uint8_t>() % 3;
  const std::string rest = in.Rest();
  if (mode == 2) {
    (void)hpo::SearchSpace::FromFile(fuzz::WriteScratch("space.json", rest));
    return 0;
  }
  std::string journal;
  if (mode == 0) {
    journal = rest;
  } else {
    for (absl::string_view line : absl::StrSplit(rest, '\n', absl::SkipEmpty())) {
      journal += absl::StrFormat("%08x %s\n", hpo::Crc32(line), line);
    }
  }
  const std::string dir = fuzz::ScratchDir() + "/study";
  (void)models::MakeDirs(dir);
  fuzz::WriteScratch("study/" + hpo::JournalPath("").substr(1), journal);
  hpo::StudyOptions options;
  options.sync = false;
  options.heartbeat_interval_s = 0;
  options.warn = [](const std::string&) {};
  auto study = hpo::Study::OpenExisting(dir, options);
  if (!study.ok()) return 0;
  auto trials = (*study)->Trials();
  if (!trials.ok()) return 0;
  const hpo::SearchSpace& space = (*study)->space();
  (void)hpo::TrialsCsv(space, *trials);
  (void)hpo::Leaderboard(space, *trials, (*study)->options().direction, 5);
  (void)hpo::HistorySvg(*trials, (*study)->options().direction, "fuzz");
  if (auto imp = hpo::ComputeImportance(space, *trials); imp.ok()) {
    (void)hpo::ImportanceText(*imp);
  }
  (void)(*study)->BestTrial();
  if (auto t = (*study)->Ask(); t.ok()) (void)(*study)->Tell(t->number(), 1.0);
  return 0;
}
