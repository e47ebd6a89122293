// Canned HTTP answers for the unit tests of the DCS backends' pure parts.
#pragma once

#include "dcs/http_client.hpp"

#include <string>
#include <utility>

namespace pgwarden::dcs_test {

inline dcs::HttpResponse answer(unsigned status, std::string body) {
    dcs::HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

}  // namespace pgwarden::dcs_test
