// Shared pieces of the command-line tools: --help and --version, flag parsing (dashed names,
// deprecated aliases, "did you mean"), error exits, and the small decisions every tool makes the
// same way (colour, --device, reading a prompt from a file or stdin).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pmpd::cli {

// One heading of --help: a title ("Model", "Generation", ...) and the flags under it, by their
// ABSL_FLAG names (underscores), in the order shown. A flag of the tool in no group is listed
// under "Other".
struct FlagGroup {
  std::string title;
  std::vector<std::string> flags;
};

// Sets the usage text and makes --help list the flags defined under cli/. Call before parsing.
void InitUsage(absl::string_view usage);
// The same, with the tool's flags grouped by purpose in --help.
void InitUsage(absl::string_view usage, std::vector<FlagGroup> groups);

// What --help prints: the usage text, then every flag defined under cli/ with its dashed name,
// type, default and help, grouped as InitUsage was told.
std::string HelpText();

// "<program> <version> (<build type>, commit <short hash>[-dirty])"; the commit is "unknown" when
// the build tree was not a git checkout.
std::string VersionLine(absl::string_view program);

// Parses flags with Abseil after spelling `--foo-bar` as `--foo_bar`, so the documented dashed
// names work (Abseil names cannot hold '-'); a value given as the next word ("--prompt --x-y") is
// left as written. --help/-h print HelpText() and --version VersionLine() on stdout and exit 0; a
// deprecated flag name (kDeprecatedFlags) is taken as its new name with a notice on stderr; an
// unknown flag exits 2 with "did you mean" when a flag of the tool is close; a positional argument
// exits 2 unless `allow_positional` (an unquoted "--prompt Once upon a time" would otherwise use
// "Once" silently). Returns the positional arguments (argv[0] excluded).
std::vector<std::string> ParseFlags(int argc, char** argv, bool allow_positional = false);

// Whether the flag `name` (ABSL_FLAG spelling, underscores) was written on the command line
// (under any spelling or a deprecated alias) in the last ParseFlags. A value from --flagfile or
// --fromenv does not count. Lets a tool refuse a flag its chosen mode ignores even when the value
// written equals the default.
bool FlagGiven(absl::string_view name);

// Levenshtein distance (insertions, deletions, substitutions; O(|a| |b|)).
int EditDistance(absl::string_view a, absl::string_view b);
// The candidate closest to `name` when it is close enough to be a typo (distance at most 2, and at
// most a third of the name's length), else "". Ties go to the first candidate.
std::string ClosestName(absl::string_view name, const std::vector<std::string>& candidates);

// Prints "<program>: error: <message>" to stderr and returns exit code 1 (2 for bad flags).
int Fail(absl::string_view program, const absl::Status& status);
// Prints "<program>: warning: <message>" to stderr.
void Warn(absl::string_view program, absl::string_view message);

// Runs a tool's body with one top-level handler: an exception that escapes it (a LibTorch
// c10::Error, std::bad_alloc, a JSON or standard-library error) becomes
// "<program>: error: <what>" and exit 1, never an abort. Every tool's main goes through it.
int RunGuarded(absl::string_view program, const std::function<int()>& body);

// The colour decision for --color: "always" and "never" are what they say; "auto" colours only a
// terminal, and not when NO_COLOR is set to a non-empty value (no-color.org) or TERM is "dumb".
// `no_color` and `term` are the environment's values (null when unset). Fails on another mode.
absl::StatusOr<bool> ShouldColor(absl::string_view mode, bool is_terminal, const char* no_color,
                                 const char* term);

// OK for cpu, cuda or auto (the --device vocabulary shared by every tool); an InvalidArgument
// error naming `flag` otherwise. `cpu_only`: the tool has only the CPU engine, so cuda is refused
// (auto means cpu there).
absl::Status CheckDeviceFlag(absl::string_view value, bool cpu_only = false,
                             absl::string_view flag = "--device");

// The whole text of `path`, or of stdin when `path` is "-"; one trailing newline ("\n" or "\r\n")
// is dropped, since files written by editors and `echo` end with one. Errors name `flag` and the
// file (unreadable, or empty).
absl::StatusOr<std::string> ReadTextInput(const std::string& path, absl::string_view flag);

// The process's peak resident set in bytes (getrusage; -1 if it fails).
int64_t PeakHostBytes();

// Parses `value` of `flag` ("--shard") as i/n into index and count (the range is the caller's
// to check); an error naming the flag and the expected form otherwise.
absl::Status ParseShard(const std::string& value, int* index, int* count,
                        absl::string_view flag = "--shard");

}  // namespace pmpd::cli
