#include "eval/eval_tasks.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "models/file_util.h"
#include "models/text_data.h"

namespace pmpd::eval {
namespace {

using json = nlohmann::json;

// Index just past the first sentence end (., ! or ? followed by a space or the end), or npos.
size_t FirstSentenceEnd(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if ((s[i] == '.' || s[i] == '!' || s[i] == '?') &&
        (i + 1 == s.size() || s[i + 1] == ' ' || s[i + 1] == '\n')) {
      return i + 1;
    }
  }
  return std::string::npos;
}

absl::StatusOr<std::vector<json>> ReadJsonl(const std::string& path) {
  auto text = models::ReadFileToString(path);
  if (!text.ok()) return text.status();
  std::vector<json> out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_no;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    json j = json::parse(line.begin(), line.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": not a JSON object"));
    }
    out.push_back(std::move(j));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": empty data file"));
  return out;
}

absl::StatusOr<std::string> StringField(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing string field \"", key, "\""));
  }
  return it->get<std::string>();
}

}  // namespace

const std::vector<std::string>& EvalTaskNames() {
  static const std::vector<std::string> kNames = {"tinystories", "c4", "cnn_dm", "dialogsum",
                                                  "iwslt"};
  return kNames;
}

absl::StatusOr<EvalTask> LoadEvalTask(const std::string& name, const std::string& shared_dir,
                                      const std::string& data_path, int skip, int n) {
  if (skip < 0)
    return absl::InvalidArgumentError(absl::StrCat("LoadEvalTask: negative skip ", skip));
  EvalTask task;
  task.name = name;
  auto path = [&](const char* rel) {
    return data_path.empty() ? models::JoinPath(shared_dir, rel) : data_path;
  };
  const int want = n > 0 ? skip + n : 0;
  if (name == "tinystories" || name == "c4") {
    const bool stories = name == "tinystories";
    task.data_path = path(stories ? "data/text/tinystories_train_head2MiB.txt"
                                  : "data/c4/c4-validation.00000-of-00008.first800.json.gz");
    // Held-out parts: pmpd-quantize calibrates from the start of such files.
    auto docs = models::ReadTextDocs(task.data_path, 0, stories ? 0.75 : 0.5, 1.0);
    if (!docs.ok()) return docs.status();
    for (const std::string& d : docs->texts) {
      if (want > 0 && static_cast<int>(task.examples.size()) >= want) break;
      EvalExample ex;
      if (stories) {
        const size_t end = FirstSentenceEnd(d);
        if (end == std::string::npos || end >= d.size())
          continue;  // no continuation to compare with
        ex.content = d.substr(0, end);
        ex.references = {std::string(absl::StripAsciiWhitespace(d.substr(end)))};
      } else {
        std::vector<std::string> words = absl::StrSplit(d, ' ', absl::SkipEmpty());
        if (words.size() < 64) continue;
        ex.content = absl::StrJoin(words.begin(), words.begin() + 48, " ");
        ex.references = {absl::StrJoin(
            words.begin() + 48, words.begin() + std::min<size_t>(words.size(), 48 + 128), " ")};
      }
      task.examples.push_back(std::move(ex));
    }
  } else if (name == "cnn_dm" || name == "dialogsum" || name == "iwslt") {
    task.data_path = path(name == "cnn_dm"      ? "data/eval/cnn_dm.specbench80.jsonl"
                          : name == "dialogsum" ? "data/eval/dialogsum.test.jsonl"
                                                : "data/eval/iwslt2017-en-fr.test-sample30.jsonl");
    auto rows = ReadJsonl(task.data_path);
    if (!rows.ok()) return rows.status();
    for (size_t i = 0; i < rows->size(); ++i) {
      if (want > 0 && static_cast<int>(task.examples.size()) >= want) break;
      const json& j = (*rows)[i];
      const std::string where = absl::StrCat(task.data_path, ":", i + 1);
      EvalExample ex;
      if (name == "cnn_dm") {
        auto turns = j.find("turns");
        auto refs = j.find("reference");
        if (turns == j.end() || !turns->is_array() || turns->empty() || !(*turns)[0].is_string() ||
            refs == j.end() || !refs->is_array()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": expected \"turns\" and \"reference\" lists"));
        }
        std::string article = (*turns)[0].get<std::string>();
        if (absl::StartsWith(article, "Summarize: ")) article = article.substr(11);
        ex.prefix = "For the following article: ";
        ex.content = article;
        ex.suffix = " Return a summary comprising of around 3 sentences.";
        for (const auto& r : *refs) {
          if (r.is_string()) ex.references.push_back(r.get<std::string>());
        }
      } else if (name == "dialogsum") {
        auto dialogue = StringField(j, "dialogue", where);
        if (!dialogue.ok()) return dialogue.status();
        ex.prefix = "For the following dialogue: ";
        ex.content = *dialogue;
        ex.suffix = " Return a summary comprising of 1 or 2 sentences.";
        for (const char* key : {"summary1", "summary2", "summary3", "summary"}) {
          if (auto it = j.find(key); it != j.end() && it->is_string())
            ex.references.push_back(it->get<std::string>());
        }
      } else {
        auto fr = StringField(j, "reference", where);  // the French side of our en->fr sample
        auto en = StringField(j, "source", where);
        if (!fr.ok()) return fr.status();
        if (!en.ok()) return en.status();
        task.metric = QualityMetric::kBleu;
        ex.prefix = "Translate the following text from French to English: ";
        ex.content = *fr;
        ex.references = {*en};
      }
      if (ex.references.empty())
        return absl::InvalidArgumentError(absl::StrCat(where, ": no reference"));
      task.examples.push_back(std::move(ex));
    }
    if (name == "iwslt") task.metric = QualityMetric::kBleu;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown task \"", name, "\"; known: ", absl::StrJoin(EvalTaskNames(), ", ")));
  }
  if (static_cast<int>(task.examples.size()) <= skip) {
    return absl::InvalidArgumentError(absl::StrCat(task.data_path, ": only ", task.examples.size(),
                                                   " usable examples, fewer than the ",
                                                   skip + std::max(n, 1), " asked for"));
  }
  task.examples.erase(task.examples.begin(), task.examples.begin() + skip);
  return task;
}

}  // namespace pmpd::eval
