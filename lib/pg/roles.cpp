// Roles on a freshly bootstrapped primary: the superuser password, the replication user and
// the rewind user with the grants pg_rewind needs (Patroni bootstrap.py post_bootstrap).
#include "pg/postgres_impl.hpp"

#include <spdlog/spdlog.h>

namespace pgwarden::pg {

namespace net = boost::asio;
using Clock = std::chrono::steady_clock;
using detail::make_error;
using detail::pq_error;

namespace {

// CREATE or ALTER a role like Patroni's create_or_update_role; the password is hashed on the
// client with the server's password_encryption, so neither the statement nor the wire carries
// it in plain text. Never logs the statement.
net::awaitable<Status> create_or_update_role(PqConnection* c,
                                             std::string name,
                                             std::string password,
                                             std::string options,
                                             std::string algorithm,
                                             Clock::time_point deadline) {
    std::vector<std::optional<std::string>> params;
    params.emplace_back(name);
    auto exists = co_await c->query(
        "SELECT 1 FROM pg_catalog.pg_authid WHERE rolname = $1", std::move(params), deadline);
    if (exists.error) {
        co_return pq_error("could not look up role \"" + name + "\"", *exists.error);
    }
    auto ident = c->escape_identifier(name);
    if (!ident) {
        co_return make_error(ErrorKind::InvalidConfig,
                             "could not quote role name \"" + name + "\"");
    }
    std::string sql =
        (exists.result.rows.empty() ? "CREATE ROLE " : "ALTER ROLE ") + *ident + " WITH " + options;
    if (!password.empty()) {
        auto verifier = c->encrypt_password(password, name, algorithm);
        auto literal = c->escape_literal(verifier ? *verifier : password);
        if (!literal) {
            co_return make_error(ErrorKind::InvalidConfig,
                                 "could not quote the password of role \"" + name + "\"");
        }
        sql += " PASSWORD " + *literal;
    }
    auto r = co_await c->query(std::move(sql), {}, deadline);
    if (r.error) {
        co_return pq_error("could not create or update role \"" + name + "\"", *r.error);
    }
    co_return std::nullopt;
}

}  // namespace

Task<Status> Postgres::create_roles() {
    Impl& d = *impl_;
    const auto& pg = d.settings.postgresql;
    auto deadline = Clock::now() + std::chrono::seconds(std::max(60, pg.pg_ctl_timeout));
    PqConnection c(d.ex);
    if (auto err = co_await d.connect_fresh(&c, deadline)) {
        co_return pq_error("create_roles: could not connect to PostgreSQL for " + d.where(), *err);
    }
    for (const char* set : {"SET log_statement TO none",
                            "SET log_min_duration_statement TO -1",
                            "SET log_min_error_statement TO panic",
                            "SET synchronous_commit TO local"}) {
        auto r = co_await c.query(set, {}, deadline);
        if (r.error) {
            co_return pq_error("create_roles: " + std::string(set) + " failed", *r.error);
        }
    }
    auto enc =
        co_await c.query("SELECT pg_catalog.current_setting('password_encryption')", {}, deadline);
    std::string algorithm = "scram-sha-256";
    if (!enc.error && !enc.result.rows.empty() && enc.result.rows[0][0]) {
        algorithm = *enc.result.rows[0][0];
    }

    if (!pg.superuser.username.empty() && !pg.superuser.password.empty()) {
        if (auto err = co_await create_or_update_role(&c,
                                                      pg.superuser.username,
                                                      pg.superuser.password,
                                                      "SUPERUSER LOGIN",
                                                      algorithm,
                                                      deadline)) {
            co_return detail::with_prefix("create_roles: ", std::move(*err));
        }
    }
    if (!pg.replication.username.empty()) {
        if (auto err = co_await create_or_update_role(&c,
                                                      pg.replication.username,
                                                      pg.replication.password,
                                                      "REPLICATION LOGIN",
                                                      algorithm,
                                                      deadline)) {
            co_return detail::with_prefix("create_roles: ", std::move(*err));
        }
    }
    if (pg.rewind && !pg.rewind->username.empty() && pg.rewind->username != pg.superuser.username) {
        if (auto err = co_await create_or_update_role(
                &c, pg.rewind->username, pg.rewind->password, "LOGIN", algorithm, deadline)) {
            co_return detail::with_prefix("create_roles: ", std::move(*err));
        }
        auto ident = c.escape_identifier(pg.rewind->username);
        if (!ident) {
            co_return make_error(
                ErrorKind::InvalidConfig,
                "create_roles: could not quote role name \"" + pg.rewind->username + "\"");
        }
        // The functions pg_rewind needs (Patroni's bootstrap.py post_bootstrap).
        for (const char* fn : {"pg_ls_dir(text, boolean, boolean)",
                               "pg_stat_file(text, boolean)",
                               "pg_read_binary_file(text)",
                               "pg_read_binary_file(text, bigint, bigint, boolean)"}) {
            auto r = co_await c.query(
                "GRANT EXECUTE ON FUNCTION pg_catalog." + std::string(fn) + " TO " + *ident,
                {},
                deadline);
            if (r.error) {
                co_return pq_error("create_roles: could not grant EXECUTE on " + std::string(fn) +
                                       " to \"" + pg.rewind->username + "\"",
                                   *r.error);
            }
        }
    }
    spdlog::info("pg: created or updated the superuser, replication and rewind roles");
    co_return std::nullopt;
}

}  // namespace pgwarden::pg
