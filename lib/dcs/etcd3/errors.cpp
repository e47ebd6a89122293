#include "dcs/etcd3/errors.hpp"

#include "dcs/etcd3/wire.hpp"

#include <spdlog/spdlog.h>

namespace pgwarden::dcs::etcd3 {

bool is_retriable(Errc e) {
    return e == Errc::Unavailable || e == Errc::Timeout;
}

std::optional<EtcdError> extract_error(const json& body) {
    if (!body.is_object()) {
        return std::nullopt;
    }
    EtcdError e;
    if (auto it = body.find("error"); it != body.end()) {
        if (it->is_object()) {
            e.code = static_cast<int>(i64_field(*it, "grpc_code"));
            if (auto m = it->find("message"); m != it->end() && m->is_string()) {
                e.message = m->get<std::string>();
            }
            return e;
        }
        if (it->is_string()) {
            e.message = it->get<std::string>();
        }
    }
    if (auto it = body.find("code"); it != body.end() && it->is_number_integer()) {
        e.code = it->get<int>();
    } else if (e.message.empty()) {
        return std::nullopt;
    }
    if (auto m = body.find("message"); m != body.end() && m->is_string() && e.message.empty()) {
        e.message = m->get<std::string>();
    }
    return e;
}

Verdict classify(const EtcdError& e, unsigned http_status) {
    Verdict v;
    // gRPC code first, message second (spec §8).
    if (e.code == kGrpcUnauthenticated || contains(e.message, "invalid auth token") ||
        contains(e.message, "revision of auth store is old") ||
        contains(e.message, "user name is empty")) {
        v.result = make_error_code(Errc::Unauthorized);
        v.reauth = true;
        return v;
    }
    switch (e.code) {
        case kGrpcPermissionDenied:
            v.result = make_error_code(Errc::Forbidden);
            return v;
        case kGrpcNotFound:
            v.result = make_error_code(Errc::NotFound);
            return v;
        case kGrpcUnavailable:
        case kGrpcDeadlineExceeded:
            v.result = make_error_code(Errc::Unavailable);
            v.retry = true;
            return v;
        case kGrpcInvalidArgument:
        case kGrpcFailedPrecondition:
            v.result = make_error_code(Errc::BadRequest);
            return v;
        case kGrpcUnknown:
            if (contains(e.message, "not a primary lessor") ||
                contains(e.message, "leader changed")) {
                v.result = make_error_code(Errc::Unavailable);
                v.retry = true;
                return v;
            }
            break;
        default:
            break;
    }
    if (http_status >= 500) {
        v.result = make_error_code(Errc::Unavailable);
        v.retry = true;
    } else if (http_status == 401) {
        v.result = make_error_code(Errc::Unauthorized);
        v.reauth = true;
    } else if (http_status == 403) {
        v.result = make_error_code(Errc::Forbidden);
    } else if (http_status == 404 && e.code < 0) {
        v.result = make_error_code(Errc::Protocol);  // wrong API prefix / gateway disabled
    } else {
        v.result = make_error_code(Errc::BadRequest);
    }
    return v;
}

Verdict classify(const HttpResponse& r) {
    auto body = json::parse(r.body, nullptr, false);
    if (r.status == 200) {
        if (body.is_discarded() || !body.is_object()) {
            return Verdict{make_error_code(Errc::Protocol), false, false};
        }
        // Streaming endpoints (lease/keepalive) report errors inside a 200 answer.
        if (auto it = body.find("error"); it != body.end() && it->is_object()) {
            return classify(*extract_error(body), r.status);
        }
        return Verdict{std::move(body), false, false};
    }
    EtcdError e;
    if (!body.is_discarded()) {
        if (auto extracted = extract_error(body)) {
            e = std::move(*extracted);
        }
    } else {
        e.message = r.body;
    }
    auto v = classify(e, r.status);
    if (!v.retry) {
        spdlog::debug(
            "etcd3: request failed status={} code={} message={}", r.status, e.code, e.message);
    }
    return v;
}

}  // namespace pgwarden::dcs::etcd3
