// The chat page (serve/web/index.html), compiled in so that pmpd-serve is one file to deploy.
#pragma once

#include <string_view>

namespace pmpd::serve {

std::string_view WebPage();

}  // namespace pmpd::serve
