#include "cli/cli_common.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace pmpd::cli {

void InitUsage(absl::string_view usage) {
  absl::SetProgramUsageMessage(absl::StrCat(usage,
                                            "\n\nFlags may be written with dashes or underscores "
                                            "(--max-new-tokens or --max_new_tokens)."));
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

std::vector<std::string> ParseFlags(int argc, char** argv, bool allow_positional) {
  // The tool's name for the errors below (argv[0] without its directory).
  std::string program = argc > 0 ? argv[0] : "pmpd";
  program = program.substr(program.rfind('/') + 1);
  static std::vector<std::string> storage;  // argv strings must outlive parsing
  storage.assign(argv, argv + argc);
  // --undefok=a,b asks Abseil to tolerate those unknown names: leave unknown flags to it then.
  const bool undefok =
      std::any_of(storage.begin() + std::min<size_t>(1, storage.size()), storage.end(),
                  [](const std::string& a) {
                    return a.rfind("--undefok", 0) == 0 || a.rfind("-undefok", 0) == 0;
                  });
  for (size_t i = 1; i < storage.size(); ++i) {
    std::string& a = storage[i];
    if (a == "--") break;
    // Abseil takes -name as well as --name; "-" alone and non-flags are left as they are.
    const size_t dashes = a.compare(0, 2, "--") == 0 ? 2 : (a.size() > 1 && a[0] == '-' ? 1 : 0);
    if (dashes == 0 || a.size() <= dashes) continue;
    const size_t end = std::min(a.find('='), a.size());
    const std::string as_written = a.substr(0, end);
    for (size_t k = dashes; k < end; ++k) {
      if (a[k] == '-') a[k] = '_';
    }
    // An unknown flag gets our one-line error, not Abseil's "ERROR: Unknown command line flag"
    // (issue 17). Bool flags may be negated as --noNAME.
    const std::string name = a.substr(dashes, end - dashes);
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && name.compare(0, 2, "no") == 0) {
      const absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>()) flag = negated;
    }
    // Abseil's own flags (--help, --flagfile, ...) are handled by ParseCommandLine.
    static const char* const kBuiltin[] = {"help",      "helpfull", "helpshort",  "helppackage",
                                           "helpmatch", "helpon",   "version",    "only_check_args",
                                           "flagfile",  "fromenv",  "tryfromenv", "undefok"};
    const bool builtin =
        std::find(std::begin(kBuiltin), std::end(kBuiltin), name) != std::end(kBuiltin);
    if (flag == nullptr && !builtin && !undefok) {
      std::fprintf(stderr, "%s: error: unknown flag %s (see --help)\n", program.c_str(),
                   as_written.c_str());
      std::exit(2);
    }
    // "--prompt --my-dog": the next word is this flag's value, not a flag: leave it as written.
    if (end == a.size() && flag != nullptr && !flag->IsOfType<bool>()) ++i;
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

int Fail(absl::string_view program, const absl::Status& status) {
  std::fprintf(stderr, "%.*s: error: %.*s\n", static_cast<int>(program.size()), program.data(),
               static_cast<int>(status.message().size()), status.message().data());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
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

}  // namespace pmpd::cli
