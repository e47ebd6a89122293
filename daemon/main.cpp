// pgwarden: one HA supervisor per PostgreSQL node. Wiring only: flags, config, signals, backends.
#include "asio/spawn.hpp"
#include "config/load.hpp"
#include "config/unsupported.hpp"
#include "config/validate.hpp"
#include "core/node_state.hpp"
#include "dcs/consul/consul_dcs.hpp"
#include "dcs/etcd3/etcd3_dcs.hpp"
#include "pg/postgres.hpp"
#include "runtime/ha_loop.hpp"
#include "runtime/rest/api_actions.hpp"
#include "runtime/rest/server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <memory>
#include <string>

namespace net = boost::asio;
using namespace pgwarden;

namespace {

constexpr const char* kUsage =
    "usage: pgwarden CONFIG_FILE\n"
    "       pgwarden --validate-config CONFIG_FILE\n"
    "       pgwarden --print-transitions\n"
    "       pgwarden --version\n"
    "\n"
    "CONFIG_FILE is a Patroni YAML configuration (patroni.yml); PATRONI_* environment\n"
    "variables override it as in Patroni.\n"
    "Exit codes: 0 stopped on request, 2 bad configuration, 3 data directory not usable,\n"
    "4 PostgreSQL not usable, 70 internal error.\n";

core::MonoMs monotonic_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void setup_logging(const std::string& level) {
    auto logger = spdlog::stderr_color_mt("pgwarden");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$: %v");
    std::string l = level;
    for (auto& c : l) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (l == "warning") {
        l = "warn";
    } else if (l == "critical" || l == "fatal") {
        l = "critical";
    }
    spdlog::set_level(spdlog::level::from_str(l));
}

net::awaitable<void> run_ttl_check(dcs::ConsulDcs* consul,
                                   int ttl,
                                   std::string* message,
                                   bool* refused) {
    auto r = co_await consul->check_ttl(ttl, message);
    *refused = !r && r.error() == dcs::make_error_code(dcs::Errc::BadRequest);
}

// A ttl that Consul cannot honour is refused at start (an unreachable agent is not: the HA loop
// keeps trying, and never reads "unreachable" as "no leader").
bool check_consul_ttl(net::io_context& ioc,
                      dcs::ConsulDcs& consul,
                      int ttl,
                      const std::string& path) {
    std::string message;
    bool refused = false;
    net::co_spawn(ioc, run_ttl_check(&consul, ttl, &message, &refused), [](std::exception_ptr e) {
        if (e) {
            async::log_exception("consul ttl check", e);
        }
    });
    ioc.run();
    ioc.restart();
    if (refused) {
        spdlog::error("{}: bootstrap.dcs.ttl: {}", path, message);
        return false;
    }
    return true;
}

int run_daemon(const std::string& path) {
    const auto env = config::environment_map();
    // Settings pgwarden does not implement yet: warnings are printed, errors refuse the start.
    auto loaded = config::load_file_checked(path, env);
    for (const auto& p : loaded.problems) {
        std::cerr << config::format_problem(p, path) << "\n";
    }
    if (!loaded.ok()) {
        std::cerr << "pgwarden: refusing to start with an invalid configuration: " << path << "\n";
        return runtime::kExitBadConfig;
    }
    core::Settings settings = std::move(loaded.settings);
    settings.config_file = path;
    setup_logging(settings.log.level);

    // TLS to etcd is not implemented yet: refuse rather than talk plain HTTP to a server the
    // operator configured for TLS. (Consul's scheme https, verify, cacert, cert, key are.)
    const auto& etcd = settings.dcs.etcd3;
    if (settings.dcs.kind == core::DcsKind::Etcd3 &&
        (etcd.protocol == "https" || !etcd.cacert.empty() || !etcd.cert.empty() ||
         !etcd.key.empty())) {
        spdlog::error(
            "{}: TLS to the DCS (etcd3.protocol https, cacert, cert, key) is not supported "
            "by this pgwarden version for etcd3; refusing to start",
            path);
        return runtime::kExitBadConfig;
    }
    const auto& consul = settings.dcs.consul;
    if (settings.dcs.kind == core::DcsKind::Consul && consul.scheme != "https" &&
        (!consul.cacert.empty() || !consul.cert.empty() || !consul.key.empty())) {
        spdlog::warn(
            "{}: consul.cacert/cert/key are set but consul.scheme is {}: they are ignored "
            "(use scheme https or an https:// url for TLS)",
            path,
            consul.scheme);
    }

    net::io_context ioc{1};
    std::unique_ptr<dcs::Dcs> dcs;
    switch (settings.dcs.kind) {
        case core::DcsKind::Etcd3:
            dcs = std::make_unique<dcs::Etcd3Dcs>(ioc.get_executor(),
                                                  settings.dcs.etcd3,
                                                  settings.namespace_,
                                                  settings.scope,
                                                  settings.name);
            break;
        case core::DcsKind::Consul: {
            auto consul = std::make_unique<dcs::ConsulDcs>(ioc.get_executor(),
                                                           settings.dcs.consul,
                                                           settings.namespace_,
                                                           settings.scope,
                                                           settings.name);
            if (!check_consul_ttl(ioc, *consul, settings.bootstrap.dcs.ttl, path)) {
                return runtime::kExitBadConfig;
            }
            dcs = std::move(consul);
            break;
        }
        case core::DcsKind::None:
            spdlog::error("{}: no DCS configured (etcd3 or consul)", path);
            return runtime::kExitBadConfig;
    }

    pg::Postgres postgres(ioc.get_executor(), settings);
    runtime::HaLoop ha(ioc.get_executor(), settings, *dcs, postgres, monotonic_ms);

    rest::Server::Options api_options;
    api_options.listen = settings.restapi.listen;
    api_options.settings = settings.restapi;
    rest::Server api(
        ioc.get_executor(),
        api_options,
        [&ha] { return ha.status(); },
        [] {
            return rest::Context{monotonic_ms(), static_cast<std::int64_t>(std::time(nullptr))};
        });
    api.set_actions(&ha.api_actions());
    if (auto ec = api.start()) {
        spdlog::error("restapi.listen {}: {}", settings.restapi.listen, ec.message());
        return runtime::kExitBadConfig;
    }
    spdlog::info("pgwarden {} starting: scope={} name={} restapi={}",
                 PGW_VERSION,
                 settings.scope,
                 settings.name,
                 settings.restapi.listen);

    net::signal_set signals(ioc, SIGTERM, SIGINT, SIGHUP);
    std::function<void(boost::system::error_code, int)> on_signal;
    on_signal = [&](boost::system::error_code ec, int sig) {
        if (ec) {
            return;
        }
        if (sig == SIGHUP) {
            spdlog::warn("SIGHUP: configuration reload is not supported yet; restart to apply");
        } else {
            spdlog::info("received signal {}: shutting down", sig);
            ha.request_shutdown();
        }
        signals.async_wait(on_signal);
    };
    signals.async_wait(on_signal);

    int exit_code = runtime::kExitInternalBug;
    net::co_spawn(ioc, ha.run(), [&](std::exception_ptr e, int code) {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                spdlog::critical("internal error in the HA loop: {}", ex.what());
            }
            exit_code = runtime::kExitInternalBug;
        } else {
            exit_code = code;
        }
        api.stop();
        signals.cancel();
        ioc.stop();
    });
    ioc.run();
    spdlog::info("pgwarden stopped (exit code {})", exit_code);
    return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc == 2 && (std::strcmp(argv[1], "--version") == 0)) {
            std::cout << "pgwarden " << PGW_VERSION << "\n";
            return 0;
        }
        if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
            std::cout << kUsage;
            return 0;
        }
        if (argc == 2 && std::strcmp(argv[1], "--print-transitions") == 0) {
            std::cout << core::print_transitions();
            return 0;
        }
        if (argc == 3 && std::strcmp(argv[1], "--validate-config") == 0) {
            return config::validate_config_file(argv[2], config::environment_map(), std::cout);
        }
        if (argc == 2 && argv[1][0] != '-') {
            return run_daemon(argv[1]);
        }
        std::cerr << kUsage;
        return runtime::kExitBadConfig;
    } catch (const std::exception& e) {
        std::cerr << "pgwarden: internal error: " << e.what() << "\n";
        return runtime::kExitInternalBug;
    }
}
