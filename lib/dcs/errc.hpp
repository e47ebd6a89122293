// Expected failures of the DCS layer as values (STYLE.md point 14).
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <string>
#include <type_traits>

namespace pgwarden::dcs {

template <class T>
using Result = boost::system::result<T>;

enum class Errc {
    Ok = 0,
    Unavailable = 1,  // connection refused/reset, 5xx, no leader: try again later
    Timeout,          // deadline passed
    Unauthorized,     // 401 / invalid token: credentials are wrong
    Forbidden,        // 403 / permission denied: ACL does not allow the operation
    NotFound,         // the lease / session is gone
    Protocol,         // the reply could not be understood
    BadRequest,       // the DCS refused our request as malformed (a bug or a misconfiguration)
    Cancelled,        // shutdown
};

const boost::system::error_category& dcs_category() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), dcs_category()};
}

}  // namespace pgwarden::dcs

template <>
struct boost::system::is_error_code_enum<pgwarden::dcs::Errc> : std::true_type {};
