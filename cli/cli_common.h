// Shared pieces of the command-line tools: --help configuration and error exits.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace pmpd::cli {

// Sets the usage text and makes --help list the flags defined under cli/. Call before parsing.
void InitUsage(absl::string_view usage);

// Parses flags with Abseil after spelling `--foo-bar` as `--foo_bar`, so the documented dashed
// names work (Abseil names cannot hold '-'); a value given as the next word ("--prompt --x-y") is
// left as written. Exits on --help or bad flags, and (exit 2) on a positional argument unless
// `allow_positional` (an unquoted "--prompt Once upon a time" would otherwise use "Once" silently).
// Returns the positional arguments (argv[0] excluded).
std::vector<std::string> ParseFlags(int argc, char** argv, bool allow_positional = false);

// Prints "<program>: error: <message>" to stderr and returns exit code 1 (2 for bad flags).
int Fail(absl::string_view program, const absl::Status& status);

// Runs a tool's body with one top-level handler: an exception that escapes it (a LibTorch
// c10::Error, std::bad_alloc, a JSON or standard-library error) becomes
// "<program>: error: <what>" and exit 1, never an abort. Every tool's main goes through it.
int RunGuarded(absl::string_view program, const std::function<int()>& body);

}  // namespace pmpd::cli
