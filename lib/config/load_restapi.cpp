// patroni.yml, the restapi section: listen and published addresses, authentication (and the legacy
// restapi.auth), TLS files, client verification, allowlist and extra headers.

#include "config/load_internal.hpp"
#include "config/section_keys.hpp"

#include <algorithm>
#include <array>

namespace pgwarden::config::detail {

namespace {

// Every restapi key of the file: those the environment can set too, and the file-only ones.
constexpr auto kRestapiKeys = [] {
    constexpr std::array<std::string_view, 3> kFileOnly = {
        "authentication", "auth", "thread_pool_size"};
    std::array<std::string_view, kRestapiEnvKeys.size() + kFileOnly.size()> all{};
    std::copy(kFileOnly.begin(),
              kFileOnly.end(),
              std::copy(kRestapiEnvKeys.begin(), kRestapiEnvKeys.end(), all.begin()));
    return all;
}();

}  // namespace

void Loader::parse_restapi(const Value& v) {
    if (!w_.expect_map(v, "restapi")) {
        return;
    }
    core::RestApiSettings& api = r_->settings.restapi;
    w_.unknown_keys(v, "restapi", kRestapiKeys);
    const Value* listen = v.find("listen");
    if (listen == nullptr || listen->is_null()) {
        err(listen != nullptr ? *listen : v, "restapi.listen", "is required (host:port)");
    } else if (w_.get_string(*listen, "restapi.listen", &api.listen) &&
               !valid_host_port(api.listen)) {
        err(*listen, "restapi.listen", "expected host:port, got '" + api.listen + "'");
    }
    if (const Value* ca = v.find("connect_address")) {
        if (w_.get_string(*ca, "restapi.connect_address", &api.connect_address) &&
            !valid_host_port(api.connect_address)) {
            err(*ca,
                "restapi.connect_address",
                "expected host:port, got '" + api.connect_address + "'");
        }
    } else {
        w_.warning(
            v, "restapi.connect_address", "is not set; the listen address is published as api_url");
    }
    // Legacy restapi.auth: 'username:password' (api.py reads restapi.auth; config.py derives it
    // from restapi.authentication when that is present, so authentication wins).
    if (const Value* auth = v.find("auth");
        auth != nullptr && v.find("authentication") == nullptr) {
        std::string text;
        if (w_.get_string(*auth, "restapi.auth", &text)) {
            const auto colon = text.find(':');
            if (colon == std::string::npos) {
                err(*auth, "restapi.auth", "expected 'username:password' (value not shown)");
            } else {
                api.authentication =
                    core::Credentials{text.substr(0, colon), text.substr(colon + 1)};
            }
        }
    }
    if (const Value* a = v.find("authentication")) {
        core::Credentials c;
        if (parse_credentials(*a, "restapi.authentication", &c, false)) {
            if (a->find("username") == nullptr || a->find("password") == nullptr) {
                err(*a, "restapi.authentication", "needs both username and password");
            } else {
                api.authentication = c;
            }
        }
    }
    const auto str = [&](const char* key, std::string* out) {
        if (const Value* x = v.find(key)) {
            w_.get_string(*x, std::string("restapi.") + key, out);
        }
    };
    str("certfile", &api.certfile);
    str("keyfile", &api.keyfile);
    str("keyfile_password", &api.keyfile_password);
    str("cafile", &api.cafile);
    str("ciphers", &api.ciphers);
    if (const Value* vc = v.find("verify_client")) {
        std::string text;
        if (w_.get_string(*vc, "restapi.verify_client", &text)) {
            if (text != "none" && text != "optional" && text != "required") {
                err(*vc,
                    "restapi.verify_client",
                    "expected none, optional or required, got '" + text + "'");
            } else {
                api.verify_client = text;
            }
        }
    }
    if (const Value* al = v.find("allowlist")) {
        w_.get_string_list(*al, "restapi.allowlist", &api.allowlist);
    }
    if (const Value* aim = v.find("allowlist_include_members")) {
        w_.get_bool(*aim, "restapi.allowlist_include_members", &api.allowlist_include_members);
    }
    if (const Value* h = v.find("http_extra_headers")) {
        if (w_.expect_map(*h, "restapi.http_extra_headers")) {
            for (const auto& [hk, hv] : h->entries) {
                std::string text;
                if (w_.get_string(hv, "restapi.http_extra_headers." + hk, &text)) {
                    api.http_extra_headers[hk] = text;
                }
            }
        }
    }
}

}  // namespace pgwarden::config::detail
