// PATCH /config and PUT /config: the new `config` key is merged (PATCH) or taken whole (PUT),
// validated with the dynamic-configuration rules, and only then written to the DCS.
#include "config/dynamic.hpp"
#include "runtime/rest/dcs_values.hpp"
#include "runtime/rest/endpoints.hpp"
#include "runtime/rest/python_value.hpp"
#include "runtime/rest/response_util.hpp"

#include <string_view>
#include <utility>
#include <vector>

namespace pgwarden::rest {

namespace {

// pgwarden checks what PATCH/PUT would store (Patroni writes it unchecked and each node then
// ignores the bad values): a value every node would reject is refused here with 400, naming the
// key and the problem, and nothing is written. nullopt = acceptable.
std::optional<Response> reject_invalid(const std::string& resulting_json, const Env& env) {
    const std::vector<config::Problem> errors = config::validate_dynamic_json(resulting_json);
    if (errors.empty()) {
        return std::nullopt;
    }
    std::string text = "Invalid dynamic configuration:";
    const char* separator = " ";
    for (const auto& e : errors) {
        std::string_view key = e.path;
        if (key.substr(0, 7) == "config.") {
            key.remove_prefix(7);
        }
        text += separator;
        text += key.empty() ? std::string_view("config") : key;
        text += ": ";
        text += e.message;
        separator = "; ";
    }
    return message(400, text, env.settings);
}

}  // namespace

boost::asio::awaitable<Response> patch_config(Request req, Env env) {
    Opening opening = co_await open_request(std::move(req), env, false);
    if (opening.error) {
        co_return std::move(*opening.error);
    }
    const core::Cluster& cluster = *opening.cluster;
    const ConfigKey current = decode_config(cluster);
    if (!current.versioned) {
        co_return error_page(503);
    }
    // ClusterConfig.from_node: a value that is not a JSON object counts as {}.
    const std::string old_json = dump_json(current.data());
    bool changed = false;
    std::string new_json = config::patch_config_json(old_json, dump_json(opening.body), &changed);
    if (changed) {
        if (auto invalid = reject_invalid(new_json, env)) {
            co_return std::move(*invalid);
        }
        auto written = co_await env.actions->write_config(new_json, cluster.config_version);
        if (!written || !*written) {
            co_return error_page(409);
        }
    }
    env.actions->wakeup();
    auto merged = parse_json(new_json);
    co_return json_response(200, merged ? dump_json(*merged) : new_json, env.settings);
}

boost::asio::awaitable<Response> put_config(Request req, Env env) {
    Opening opening = co_await open_request(std::move(req), env, false);
    if (opening.error) {
        co_return std::move(*opening.error);
    }
    const ConfigKey current = decode_config(*opening.cluster);
    const std::string value = dump_json(opening.body);
    // An existing key that is JSON but not an object compares as {}; one that is not JSON never
    // compares equal.
    if (!current.json || !deep_compare(opening.body, current.data())) {
        if (auto invalid = reject_invalid(value, env)) {
            co_return std::move(*invalid);
        }
        auto written = co_await env.actions->write_config(value, std::nullopt);
        if (!written || !*written) {
            co_return error_page(502);
        }
    }
    co_return json_response(200, value, env.settings);
}

}  // namespace pgwarden::rest
