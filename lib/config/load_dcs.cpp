// patroni.yml, the DCS: which one is used (first configured, alphabetically) and its consul or
// etcd3 section (hosts, url, TLS, credentials, Consul service registration).

#include "config/load_internal.hpp"
#include "config/text.hpp"
#include "core/go_duration.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <sstream>

namespace pgwarden::config::detail {

namespace {

struct Url {
    std::string scheme;
    std::string host;
    int port = 0;
    std::string username;
    std::string password;
};

bool parse_url(const std::string& text, Url* out) {
    const auto sep = text.find("://");
    if (sep == std::string::npos || sep == 0) {
        return false;
    }
    out->scheme = lower(text.substr(0, sep));
    std::string rest = text.substr(sep + 3);
    rest = rest.substr(0, rest.find_first_of("/?#"));
    const auto at = rest.rfind('@');
    if (at != std::string::npos) {
        const std::string userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        const auto colon = userinfo.find(':');
        out->username = userinfo.substr(0, colon);
        if (colon != std::string::npos) {
            out->password = userinfo.substr(colon + 1);
        }
    }
    if (!rest.empty() && rest[0] == '[') {
        const auto close = rest.find(']');
        if (close == std::string::npos) {
            return false;
        }
        out->host = rest.substr(1, close - 1);
        rest = rest.substr(close + 1);
        if (!rest.empty() && rest[0] == ':') {
            auto n = python_int(Value::string(rest.substr(1)));
            if (!n || *n <= 0 || *n > 65535) {
                return false;
            }
            out->port = static_cast<int>(*n);
        }
        return !out->host.empty();
    }
    const auto colon = rest.rfind(':');
    out->host = rest.substr(0, colon);
    if (colon != std::string::npos) {
        auto n = python_int(Value::string(rest.substr(colon + 1)));
        if (!n || *n <= 0 || *n > 65535) {
            return false;
        }
        out->port = static_cast<int>(*n);
    }
    return !out->host.empty();
}

// Go duration ("5s", "1m30s", "500ms") -> whole seconds (at least 1 for a positive duration).
bool parse_go_duration(const std::string& text, int* seconds) {
    const std::optional<double> total_ms = core::parse_go_duration_ms(text);
    if (!total_ms || *total_ms / 1000 > INT32_MAX - 1) {
        return false;  // not a duration, or more seconds than an int holds
    }
    const int s = static_cast<int>((*total_ms + 999) / 1000);
    *seconds = *total_ms > 0 ? std::max(1, s) : 0;
    return true;
}

}  // namespace

void Loader::parse_dcs(const Value& root) {
    // Patroni takes the first configured DCS in module order (alphabetical).
    static const std::vector<std::string> kOrder = {
        "consul", "etcd", "etcd3", "exhibitor", "kubernetes", "raft", "zookeeper"};
    std::string chosen;
    for (const auto& name : kOrder) {
        if (root.find(name) == nullptr) {
            continue;
        }
        if (chosen.empty()) {
            chosen = name;
        } else {
            w_.warning(*root.find(name),
                       name,
                       "ignored: Patroni uses the first configured DCS in alphabetical order (" +
                           chosen + ")");
        }
    }
    if (chosen.empty()) {
        err(root, "", "no DCS configured: add a consul: or etcd3: section");
        return;
    }
    const Value& section = *root.find(chosen);
    if (chosen == "consul") {
        r_->settings.dcs.kind = core::DcsKind::Consul;
        parse_consul(section);
    } else if (chosen == "etcd3") {
        r_->settings.dcs.kind = core::DcsKind::Etcd3;
        parse_etcd3(section);
    } else if (chosen == "etcd") {
        err(section, "etcd", "etcd v2 is not supported, use etcd3");
    } else {
        err(section, chosen, chosen + " is not supported by pgwarden; use consul or etcd3");
    }
}

void Loader::parse_consul(const Value& v) {
    if (!v.is_null() && !w_.expect_map(v, "consul")) {
        return;
    }
    core::ConsulSettings& c = r_->settings.dcs.consul;
    w_.unknown_keys(v,
                    "consul",
                    {"host",
                     "url",
                     "port",
                     "scheme",
                     "token",
                     "verify",
                     "cacert",
                     "cert",
                     "key",
                     "dc",
                     "consistency",
                     "checks",
                     "register_service",
                     "service_tags",
                     "service_check_interval",
                     "service_check_tls_server_name"});
    const auto str = [&](const char* key, std::string* out) {
        if (const Value* x = v.find(key)) {
            w_.get_string(*x, std::string("consul.") + key, out);
        }
    };
    std::optional<int> explicit_port;
    if (const Value* p = v.find("port"); p != nullptr && !p->is_null()) {
        int port = 0;
        if (w_.get_int(*p, "consul.port", &port)) {
            if (port <= 0 || port > 65535) {
                err(*p,
                    "consul.port",
                    "expected a port number (1-65535), got " + Walker::show(*p, false));
            } else {
                explicit_port = port;
            }
        }
    }
    str("scheme", &c.scheme);
    if (const Value* u = v.find("url"); u != nullptr && !u->is_null()) {
        std::string text;
        Url url;
        if (w_.get_string(*u, "consul.url", &text)) {
            if (!parse_url(text, &url)) {
                err(*u, "consul.url", "expected http(s)://host:port, got '" + text + "'");
            } else {
                c.scheme = url.scheme;
                c.host = url.host;
                c.port = url.port != 0 ? url.port : 8500;  // the url's port wins, as in Patroni
            }
        }
    } else if (const Value* h = v.find("host"); h != nullptr && !h->is_null()) {
        std::string text;
        if (w_.get_string(*h, "consul.host", &text)) {
            std::string host;
            int port = 8500;
            if (!split_host_port(text, 8500, &host, &port) || host.empty()) {
                err(*h, "consul.host", "expected host or host:port, got '" + text + "'");
            } else {
                c.host = host;
                c.port = explicit_port.value_or(port);
            }
        }
    } else if (explicit_port) {
        c.port = *explicit_port;
    }
    str("token", &c.token);
    if (const Value* vr = v.find("verify")) {
        w_.get_bool(*vr, "consul.verify", &c.verify);
    }
    str("cacert", &c.cacert);
    str("cert", &c.cert);
    str("key", &c.key);
    str("dc", &c.dc);
    if (const Value* cs = v.find("consistency")) {
        std::string text;
        if (w_.get_string(*cs, "consul.consistency", &text)) {
            if (text != "default" && text != "consistent" && text != "stale") {
                err(*cs,
                    "consul.consistency",
                    "expected default, consistent or stale, got '" + text + "'");
            } else {
                c.consistency = text;
            }
        }
    }
    if (const Value* ch = v.find("checks")) {
        w_.get_string_list(*ch, "consul.checks", &c.checks);
    }
    if (const Value* rs = v.find("register_service")) {
        w_.get_bool(*rs, "consul.register_service", &c.register_service);
    }
    if (const Value* st = v.find("service_tags")) {
        w_.get_string_list(*st, "consul.service_tags", &c.service_tags);
    }
    if (const Value* si = v.find("service_check_interval"); si != nullptr && !si->is_null()) {
        if (si->kind != Value::Kind::String) {
            err(*si,
                "consul.service_check_interval",
                "expected a duration string such as '5s' (Patroni passes it to Consul "
                "verbatim, and "
                "Consul reads a bare number as nanoseconds), got " +
                    Walker::show(*si, false));
        } else if (int seconds = 0; !parse_go_duration(si->s, &seconds)) {
            err(*si,
                "consul.service_check_interval",
                "expected a duration such as '5s', '30s' or '1m', got '" + si->s + "'");
        } else {
            c.service_check_interval = seconds;
            c.service_check_interval_text = si->s;
        }
    }
    str("service_check_tls_server_name", &c.service_check_tls_server_name);
}

void Loader::parse_etcd3(const Value& v) {
    if (!w_.expect_map(v, "etcd3")) {
        err(v, "etcd3", "needs host, hosts or url");
        return;
    }
    core::Etcd3Settings& e = r_->settings.dcs.etcd3;
    w_.unknown_keys(v,
                    "etcd3",
                    {"host",
                     "hosts",
                     "url",
                     "proxy",
                     "port",
                     "protocol",
                     "username",
                     "password",
                     "cacert",
                     "cert",
                     "key",
                     "use_proxies",
                     "srv",
                     "srv_suffix",
                     "discovery_srv",
                     "srv_domain",
                     "version_prefix",
                     "retry_timeout",
                     "key_password"});
    const auto str = [&](const char* key, std::string* out) {
        if (const Value* x = v.find(key)) {
            w_.get_string(*x, std::string("etcd3.") + key, out);
        }
    };
    str("protocol", &e.protocol);
    str("username", &e.username);
    str("password", &e.password);
    str("cacert", &e.cacert);
    str("cert", &e.cert);
    str("key", &e.key);
    if (const Value* up = v.find("use_proxies")) {
        w_.get_bool(*up, "etcd3.use_proxies", &e.use_proxies);
    }
    int default_port = 2379;
    if (const Value* p = v.find("port"); p != nullptr && !p->is_null()) {
        w_.get_int(*p, "etcd3.port", &default_port);
    }
    const Value* url = v.find("url");
    std::string url_path = "etcd3.url";
    if (const Value* proxy = v.find("proxy"); proxy != nullptr && !proxy->is_null()) {
        e.use_proxies = true;
        url = proxy;
        url_path = "etcd3.proxy";
    }
    for (const char* srv : {"srv", "discovery_srv", "srv_domain"}) {
        if (const Value* x = v.find(srv)) {
            w_.warning(*x,
                       std::string("etcd3.") + srv,
                       "SRV discovery is not supported by pgwarden; ignored");
        }
    }
    if (url != nullptr && url->kind == Value::Kind::String) {
        Url u;
        if (!parse_url(url->s, &u)) {
            err(*url,
                url_path,
                "expected http(s)://[user:password@]host:port, got a malformed url");
        } else {
            e.protocol = u.scheme;
            e.hosts = {u.host + ":" + std::to_string(u.port != 0 ? u.port : 2379)};
            if (!u.username.empty()) {
                e.username = u.username;
                e.password = u.password;
            }
        }
    } else if (const Value* hosts = v.find("hosts"); hosts != nullptr && !hosts->is_null()) {
        std::vector<std::string> list;
        if (hosts->kind == Value::Kind::String) {
            std::stringstream ss(hosts->s);
            std::string item;
            while (std::getline(ss, item, ',')) {
                list.push_back(item);
            }
        } else {
            w_.get_string_list(*hosts, "etcd3.hosts", &list);
        }
        for (std::string item : list) {
            item.erase(0, item.find_first_not_of(' '));
            item.erase(item.find_last_not_of(' ') + 1);
            std::string host;
            int port = default_port;
            if (!split_host_port(item, default_port, &host, &port) || host.empty()) {
                err(*hosts, "etcd3.hosts", "expected host:port items, got '" + item + "'");
            } else {
                e.hosts.push_back(host + ":" + std::to_string(port));
            }
        }
    } else if (const Value* host = v.find("host");
               host != nullptr && host->kind == Value::Kind::String) {
        std::string h;
        int port = default_port;
        if (!split_host_port(host->s, 2379, &h, &port) || h.empty()) {
            err(*host, "etcd3.host", "expected host:port, got '" + host->s + "'");
        } else {
            if (v.find("port") != nullptr) {
                port = default_port;
            }
            e.hosts = {h + ":" + std::to_string(port)};
        }
    }
    if (e.hosts.empty()) {
        err(v, "etcd3", "needs host, hosts or url");
    }
}

}  // namespace pgwarden::config::detail
