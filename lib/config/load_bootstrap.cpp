// patroni.yml, the bootstrap section: method, bootstrap.dcs (the dynamic configuration a new
// cluster starts from), initdb options and post_bootstrap; and the option-list renderer it shares
// with postgresql.basebackup.

#include "config/dynamic_internal.hpp"
#include "config/load_internal.hpp"
#include "config/pg_parameters.hpp"

#include <algorithm>
#include <array>

namespace pgwarden::config::detail {

namespace {

std::string key_for_method(const std::string& method) {
    return method;
}

}  // namespace

void Loader::parse_bootstrap(const Value& v) {
    if (!w_.expect_map(v, "bootstrap")) {
        return;
    }
    core::BootstrapSettings& b = r_->settings.bootstrap;
    std::string method = "initdb";
    if (const Value* m = v.find("method")) {
        w_.get_string(*m, "bootstrap.method", &method);
        if (method.empty()) {
            method = "initdb";
        }
    }
    b.method = method;
    for (const auto& [key, value] : v.entries) {
        const std::string p = "bootstrap." + key;
        if (key == "dcs") {
            dcs_value_ = value;
            have_dcs_ = true;
            parse_dynamic_value(value, p, b.dcs, w_);
            if (const Value* pgv = value.find("postgresql"); pgv != nullptr && pgv->is_map()) {
                if (const Value* params = pgv->find("parameters");
                    params != nullptr && params->is_map()) {
                    for (const auto& [pname, pvalue] : params->entries) {
                        if (auto text = render_parameter(pvalue)) {
                            auto reason = check_cmdline_option(pname, *text);
                            if (reason && !malformed_cmdline_option(pname, *text)) {
                                w_.warning(pvalue, p + ".postgresql.parameters." + pname, *reason);
                            }
                        }
                        if (is_recovery_parameter(pname)) {
                            w_.warning(
                                pvalue,
                                p + ".postgresql.parameters." + pname,
                                "is a recovery parameter: Patroni moves it into the recovery "
                                "settings it manages instead of writing it as a server "
                                "parameter");
                        }
                    }
                }
            }
        } else if (key == "initdb") {
            if (method == "initdb") {
                static constexpr std::array<std::string_view, 5> kInitdbNotAllowed = {
                    "pgdata", "nosync", "pwfile", "sync-only", "version"};
                render_options(value, p, kInitdbNotAllowed, &b.initdb_args);
            }
        } else if (key == "post_bootstrap" || key == "post_init") {
            w_.get_string(value, p, &b.post_bootstrap);
        } else if (key == "method" || key == "pg_hba" || key == "users" ||
                   key == key_for_method(method)) {
            if (key == "users") {
                w_.warning(value, p, "bootstrap.users was removed in Patroni 4; ignored");
            }
        } else {
            w_.warning(value, p, "unknown key, ignored");
        }
    }
    if (!have_dcs_) {
        w_.warning(v,
                   "bootstrap.dcs",
                   "is missing; a new cluster starts with the default dynamic configuration");
    }
}

void Loader::render_options(const Value& v,
                            const std::string& path,
                            std::span<const std::string_view> not_allowed,
                            std::vector<std::string>* out) {
    const auto allowed = [&](const std::string& name, const Value& at, const std::string& p) {
        if (std::find(not_allowed.begin(), not_allowed.end(), name) != not_allowed.end()) {
            err(at, p, "option " + name + " is not allowed here (Patroni sets it itself)");
            return false;
        }
        return true;
    };
    const auto unquote = [](std::string s) {
        if (s.size() >= 2 &&
            ((s.front() == '"' && s.back() == '"') || (s.front() == '\'' && s.back() == '\''))) {
            const std::string inner = s.substr(1, s.size() - 2);
            if (inner.find(s.front()) == std::string::npos) {
                return inner;
            }
        }
        return s;
    };
    std::vector<std::string> result;
    if (v.is_null()) {
        return;
    }
    if (v.is_map()) {
        for (const auto& [key, value] : v.entries) {
            const std::string p = path + "." + key;
            if (!value.is_scalar() || value.is_null() || py_falsy(value)) {
                if (!value.is_scalar()) {
                    err(value, p, "expected a string value, got " + Walker::show(value, false));
                }
                continue;
            }
            if (allowed(key, value, p)) {
                result.push_back("--" + key + "=" + unquote(py_str(value)));
            }
        }
    } else if (v.is_list()) {
        for (std::size_t n = 0; n < v.items.size(); ++n) {
            const Value& item = v.items[n];
            const std::string p = path + "[" + std::to_string(n) + "]";
            if (item.kind == Value::Kind::String) {
                if (allowed(item.s, item, p)) {
                    result.push_back("--" + item.s);
                }
            } else if (item.is_map()) {
                if (item.entries.size() != 1 ||
                    item.entries[0].second.kind != Value::Kind::String) {
                    err(item,
                        p,
                        "expected a single key with a string value, e.g. {encoding: UTF8}");
                    continue;
                }
                const auto& [key, value] = item.entries[0];
                if (allowed(key, item, p)) {
                    result.push_back("--" + key + "=" + unquote(value.s));
                }
            } else {
                err(item,
                    p,
                    "expected an option name or a {name: value} mapping, got " +
                        Walker::show(item, false));
            }
        }
    } else {
        err(v, path, "expected a list of options or a mapping, got " + Walker::show(v, false));
        return;
    }
    *out = std::move(result);
}

}  // namespace pgwarden::config::detail
