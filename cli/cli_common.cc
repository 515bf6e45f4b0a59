#include "cli/cli_common.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <iterator>
#include <new>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "cli/build_info.h"

namespace pmpd::cli {
namespace {

// Old flag names that still work, each as its new name, with a one-line notice on stderr. One
// table for every tool: an entry applies to a tool that has the new flag and not the old one.
struct DeprecatedFlag {
  const char* old_name;
  const char* new_name;
};
constexpr DeprecatedFlag kDeprecatedFlags[] = {
    {"max_docs", "num_docs"},             // pmpd-perplexity
    {"n", "num_prompts"},                 // pmpd-eval
    {"calib_n", "num_calib_prompts"},     // pmpd-eval
    {"calib_samples", "num_calib_seqs"},  // pmpd-quantize
};

// Abseil's own flags, which ParseCommandLine handles (ours: --help, -h and --version, above it).
constexpr const char* kBuiltinFlags[] = {"help",      "helpfull", "helpshort",  "helppackage",
                                         "helpmatch", "helpon",   "version",    "only_check_args",
                                         "flagfile",  "fromenv",  "tryfromenv", "undefok",
                                         "h"};

std::string& Usage() {
  static std::string usage;
  return usage;
}
std::vector<FlagGroup>& Groups() {
  static std::vector<FlagGroup> groups;
  return groups;
}
std::set<std::string>& Given() {
  static std::set<std::string> given;
  return given;
}

bool IsToolFlag(const absl::CommandLineFlag& flag) {
  return absl::StrContains(flag.Filename(), "cli/");
}

std::string Dashed(absl::string_view name) { return absl::StrReplaceAll(name, {{"_", "-"}}); }

// The tool's own flags (defined under cli/), by name.
std::vector<const absl::CommandLineFlag*> ToolFlags() {
  std::vector<const absl::CommandLineFlag*> flags;
  for (const auto& [name, f] : absl::GetAllFlags()) {
    if (IsToolFlag(*f) && !f->IsRetired()) flags.push_back(f);
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  return flags;
}

// "--name <type> (default: value)" for --help.
std::string FlagSynopsis(const absl::CommandLineFlag& f) {
  std::string type;
  if (f.IsOfType<bool>()) {
    type = "";
  } else if (f.IsOfType<int>() || f.IsOfType<int64_t>() || f.IsOfType<uint64_t>()) {
    type = " <int>";
  } else if (f.IsOfType<double>() || f.IsOfType<float>()) {
    type = " <number>";
  } else if (f.IsOfType<std::string>()) {
    type = " <text>";
  } else {
    type = " <value>";
  }
  std::string line = absl::StrCat("  --", Dashed(f.Name()), type);
  const std::string def = f.DefaultValue();
  if (!def.empty()) absl::StrAppend(&line, " (default: ", def, ")");
  return line;
}

// `text` wrapped at `width` columns, each line indented by `indent` spaces.
std::string Wrap(absl::string_view text, int indent, size_t width = 100) {
  std::string out, line;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!line.empty() && indent + line.size() + 1 + word.size() > width) {
      absl::StrAppend(&out, std::string(indent, ' '), line, "\n");
      line.clear();
    }
    absl::StrAppend(&line, line.empty() ? "" : " ", word);
  }
  if (!line.empty()) absl::StrAppend(&out, std::string(indent, ' '), line, "\n");
  return out;
}

}  // namespace

void InitUsage(absl::string_view usage) { InitUsage(usage, {}); }

void InitUsage(absl::string_view usage, std::vector<FlagGroup> groups) {
  Usage() = std::string(usage);
  Groups() = std::move(groups);
  absl::SetProgramUsageMessage(absl::StrCat(usage,
                                            "\n\nFlags may be written with dashes or underscores "
                                            "(--max-new-tokens or --max_new_tokens)."));
  // --helpfull stays Abseil's listing; these keep it to the flags defined under cli/ first.
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "cli/");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  config.normalize_filename = [](absl::string_view file) {
    auto pos = file.rfind("cli/");
    return std::string(pos == absl::string_view::npos ? file : file.substr(pos));
  };
  absl::SetFlagsUsageConfig(config);
}

std::string HelpText() {
  std::string out = Usage();
  if (!out.empty() && out.back() != '\n') out += "\n";
  absl::StrAppend(&out, "\n",
                  Wrap("Flags may be written with dashes or underscores (--max-new-tokens or "
                       "--max_new_tokens), as --flag VALUE or --flag=VALUE; a boolean flag is "
                       "turned off with --noflag.",
                       0));
  const std::vector<const absl::CommandLineFlag*> flags = ToolFlags();
  std::set<std::string> shown;
  auto section = [&](const std::string& title, const std::vector<std::string>& names) {
    std::string body;
    for (const std::string& name : names) {
      auto it = std::find_if(flags.begin(), flags.end(),
                             [&](const auto* f) { return f->Name() == name; });
      if (it == flags.end() || !shown.insert(name).second) continue;
      absl::StrAppend(&body, FlagSynopsis(**it), "\n", Wrap((*it)->Help(), 6));
    }
    if (!body.empty()) absl::StrAppend(&out, "\n", title, ":\n", body);
  };
  for (const FlagGroup& g : Groups()) section(g.title, g.flags);
  std::vector<std::string> rest;
  for (const auto* f : flags) rest.emplace_back(f->Name());
  section("Other", rest);
  absl::StrAppend(&out,
                  "\n--version prints the version and build; --helpfull lists every flag, "
                  "Abseil's own too.\n");
  return out;
}

std::string VersionLine(absl::string_view program) {
  return absl::StrCat(program, " ", kVersion, " (", kBuildType, ", commit ", kGitCommit, ")");
}

std::vector<std::string> ParseFlags(int argc, char** argv, bool allow_positional) {
  // The tool's name for the errors below (argv[0] without its directory).
  std::string program = argc > 0 ? argv[0] : "pmpd";
  program = program.substr(program.rfind('/') + 1);
  static std::vector<std::string> storage;  // argv strings must outlive parsing
  storage.assign(argv, argv + argc);
  Given().clear();
  // --undefok=a,b asks Abseil to tolerate those unknown names: leave unknown flags to it then.
  const bool undefok =
      std::any_of(storage.begin() + std::min<size_t>(1, storage.size()), storage.end(),
                  [](const std::string& a) {
                    return a.rfind("--undefok", 0) == 0 || a.rfind("-undefok", 0) == 0;
                  });
  bool help = false, version = false;
  std::string unknown;  // the error for the first unknown flag
  std::string missing;  // a flag that needs a value and ends the command line, as written
  for (size_t i = 1; i < storage.size(); ++i) {
    std::string& a = storage[i];
    if (a == "--") break;
    // Abseil takes -name as well as --name; "-" alone and non-flags are left as they are.
    const size_t dashes = a.compare(0, 2, "--") == 0 ? 2 : (a.size() > 1 && a[0] == '-' ? 1 : 0);
    if (dashes == 0 || a.size() <= dashes) continue;
    size_t end = std::min(a.find('='), a.size());
    const std::string as_written = a.substr(0, end);
    for (size_t k = dashes; k < end; ++k) {
      if (a[k] == '-') a[k] = '_';
    }
    std::string name = a.substr(dashes, end - dashes);
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    // A deprecated name this tool knows by its new one: respelled, with a notice.
    if (flag == nullptr) {
      for (const DeprecatedFlag& d : kDeprecatedFlags) {
        const absl::CommandLineFlag* renamed = absl::FindCommandLineFlag(d.new_name);
        if (name != d.old_name || renamed == nullptr || !IsToolFlag(*renamed)) continue;
        std::fprintf(stderr, "%s: warning: %s is deprecated; use --%s\n", program.c_str(),
                     as_written.c_str(), Dashed(d.new_name).c_str());
        a = absl::StrCat(a.substr(0, dashes), d.new_name, a.substr(end));
        name = d.new_name;
        end = dashes + name.size();
        flag = renamed;
        break;
      }
    }
    // Bool flags may be negated as --noNAME.
    if (flag == nullptr && name.compare(0, 2, "no") == 0) {
      const absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>()) flag = negated;
    }
    if (flag != nullptr) Given().insert(std::string(flag->Name()));
    if (flag == nullptr && (name == "help" || name == "h" || name == "helpshort")) {
      help = help || end == a.size();  // --help=TEXT is Abseil's (flags matching TEXT)
    }
    if (flag == nullptr && name == "version") version = true;
    const bool builtin = std::find(std::begin(kBuiltinFlags), std::end(kBuiltinFlags), name) !=
                         std::end(kBuiltinFlags);
    if (flag == nullptr && !builtin && !undefok && unknown.empty()) {
      // An unknown flag gets our one-line error, not Abseil's "ERROR: Unknown command line flag"
      // (issue 17), with the closest flag of the tool when it looks like a typo.
      std::vector<std::string> names;
      for (const auto* f : ToolFlags()) names.emplace_back(f->Name());
      const std::string close = ClosestName(name, names);
      unknown =
          absl::StrCat("unknown flag ", as_written, " (see --help)",
                       close.empty() ? "" : absl::StrCat("; did you mean --", Dashed(close), "?"));
    }
    // "--prompt --my-dog": the next word is this flag's value, not a flag: leave it as written,
    // joined as --prompt=--my-dog (so Abseil does not ask "Did you really mean to set flag
    // 'prompt' to the value '-'?" for a value that starts with a dash).
    if (end == a.size() && flag != nullptr && !flag->IsOfType<bool>()) {
      if (i + 1 == storage.size()) {
        if (missing.empty()) missing = as_written;
        continue;
      }
      a = absl::StrCat(a, "=", storage[i + 1]);
      storage.erase(storage.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    }
  }
  if (help) {
    std::fputs(HelpText().c_str(), stdout);
    std::exit(0);
  }
  if (version) {
    std::printf("%s\n", VersionLine(program).c_str());
    std::exit(0);
  }
  if (!unknown.empty()) {
    std::fprintf(stderr, "%s: error: %s\n", program.c_str(), unknown.c_str());
    std::exit(2);
  }
  if (!missing.empty()) {
    std::fprintf(stderr, "%s: error: %s needs a value (see --help)\n", program.c_str(),
                 missing.c_str());
    std::exit(2);
  }
  std::vector<char*> args;
  for (auto& s : storage) args.push_back(s.data());
  std::vector<char*> rest = absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  std::vector<std::string> positional(rest.begin() + (rest.empty() ? 0 : 1), rest.end());
  if (!allow_positional && !positional.empty()) {
    std::fprintf(
        stderr,
        "%s: error: unexpected argument \"%s\" (quote a value that has spaces; see --help)\n",
        program.c_str(), positional.front().c_str());
    std::exit(2);
  }
  return positional;
}

bool FlagGiven(absl::string_view name) { return Given().count(std::string(name)) > 0; }

int EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<int> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diagonal = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string ClosestName(absl::string_view name, const std::vector<std::string>& candidates) {
  std::string best;
  int best_distance = std::min<int>(2, static_cast<int>(name.size()) / 3);
  for (const std::string& c : candidates) {
    const int d = EditDistance(name, c);
    if (d <= best_distance && (best.empty() || d < best_distance)) {
      best = c;
      best_distance = d;
    }
  }
  if (!best.empty() || name.size() < 3) return best;
  // A truncated name ("--temp") names the one flag it begins.
  for (const std::string& c : candidates) {
    if (absl::StartsWith(c, name)) {
      if (!best.empty()) return "";
      best = c;
    }
  }
  return best;
}

int Fail(absl::string_view program, const absl::Status& status) {
  std::fprintf(stderr, "%.*s: error: %.*s\n", static_cast<int>(program.size()), program.data(),
               static_cast<int>(status.message().size()), status.message().data());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

void Warn(absl::string_view program, absl::string_view message) {
  std::fprintf(stderr, "%.*s: warning: %.*s\n", static_cast<int>(program.size()), program.data(),
               static_cast<int>(message.size()), message.data());
}

int RunGuarded(absl::string_view program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return Fail(program, absl::ResourceExhaustedError("out of memory"));
  } catch (const std::exception& e) {
    // c10::Error's what() carries a backtrace after the first line: the message is enough.
    std::string what = e.what();
    if (const size_t nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    return Fail(program, absl::InternalError(what));
  } catch (...) {
    return Fail(program, absl::InternalError("unknown exception"));
  }
}

absl::StatusOr<bool> ShouldColor(absl::string_view mode, bool is_terminal, const char* no_color,
                                 const char* term) {
  if (mode == "always") return true;
  if (mode == "never") return false;
  if (mode != "auto") {
    return absl::InvalidArgumentError(
        absl::StrCat("--color must be auto, always or never, got \"", mode, "\""));
  }
  const bool no_color_set = no_color != nullptr && no_color[0] != '\0';
  const bool dumb = term != nullptr && absl::string_view(term) == "dumb";
  return is_terminal && !no_color_set && !dumb;
}

absl::Status CheckDeviceFlag(absl::string_view value, bool cpu_only, absl::string_view flag) {
  if (value != "cpu" && value != "cuda" && value != "auto") {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " must be cpu, cuda or auto, got \"", value, "\""));
  }
  if (cpu_only && value == "cuda") {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " cuda: this tool runs the CPU reference engine only (cpu or auto, which is cpu)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadTextInput(const std::string& path, absl::string_view flag) {
  std::string text;
  const std::string name = path == "-" ? "stdin" : path;
  if (path == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    if (std::cin.bad()) {
      return absl::InvalidArgumentError(absl::StrCat(flag, " -: cannot read stdin"));
    }
    text = ss.str();
  } else {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    char buffer[1 << 16];
    size_t n = 0;
    while (f != nullptr && (n = std::fread(buffer, 1, sizeof(buffer), f)) > 0)
      text.append(buffer, n);
    const int error = f == nullptr || std::ferror(f) ? errno : 0;
    if (f != nullptr) std::fclose(f);
    if (error != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " ", path, ": cannot read: ", std::strerror(error)));
    }
  }
  if (absl::EndsWith(text, "\r\n")) {
    text.resize(text.size() - 2);
  } else if (absl::EndsWith(text, "\n")) {
    text.pop_back();
  }
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, " ", name, " is empty"));
  return text;
}

int64_t PeakHostBytes() {
  struct rusage u;
  if (getrusage(RUSAGE_SELF, &u) != 0) return -1;
  return static_cast<int64_t>(u.ru_maxrss) * 1024;  // Linux reports kilobytes
}

absl::Status ParseShard(const std::string& value, int* index, int* count, absl::string_view flag) {
  const std::vector<std::string> parts = absl::StrSplit(value, '/');
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], index) ||
      !absl::SimpleAtoi(parts[1], count)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " \"", value, "\": expected i/n, e.g. 0/4"));
  }
  return absl::OkStatus();
}

}  // namespace pmpd::cli
