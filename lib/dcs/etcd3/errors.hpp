// What an etcd gateway answer means (spec/etcd3-gateway.md §8): its error body (3.4, 3.6 or
// streaming) as a dcs::Errc plus retry / re-authenticate verdicts. Pure functions.
#pragma once

#include "dcs/errc.hpp"
#include "dcs/http_client.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace pgwarden::dcs::etcd3 {

// gRPC status codes the gateway reports in "code" / "grpc_code".
inline constexpr int kGrpcUnknown = 2;
inline constexpr int kGrpcInvalidArgument = 3;
inline constexpr int kGrpcDeadlineExceeded = 4;
inline constexpr int kGrpcNotFound = 5;
inline constexpr int kGrpcPermissionDenied = 7;
inline constexpr int kGrpcFailedPrecondition = 9;
inline constexpr int kGrpcUnavailable = 14;
inline constexpr int kGrpcUnauthenticated = 16;

// What to do with one HTTP answer.
struct Verdict {
    Result<nlohmann::json> result = make_error_code(Errc::Protocol);
    bool retry = false;   // transient: try again (next host) until the deadline
    bool reauth = false;  // token problem: authenticate again and retry
};

// Error details from the 3.4 unary format {"error","message","code"}, the 3.6 format
// {"code","message"} and the streaming format {"error":{"grpc_code","message",...}}.
struct EtcdError {
    int code = -1;  // -1: none given
    std::string message;
};

// nullopt when `body` carries no error.
std::optional<EtcdError> extract_error(const nlohmann::json& body);
// An error (gRPC code, message) with the HTTP status it came with.
Verdict classify(const EtcdError& e, unsigned http_status);
// A whole answer: a 200 with a JSON object is the result (unless it carries a streaming error),
// anything else an error verdict.
Verdict classify(const HttpResponse& r);
// Errors worth another attempt on another host.
bool is_retriable(Errc e);

inline bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

}  // namespace pgwarden::dcs::etcd3
