// Observation: one DCS read, one PostgreSQL observation, the dynamic configuration (last good
// value per key), and the REST requests queued since the last cycle, as a core::Observation.
#include "config/dynamic.hpp"
#include "config/unsupported.hpp"
#include "core/iso8601.hpp"
#include "dcs/dcs.hpp"
#include "pg/pg_control.hpp"
#include "runtime/member_probe.hpp"
#include "runtime/runtime.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

namespace pgwarden::runtime {

using namespace std::chrono_literals;

Observer::Observer(Runtime& rt) : rt_(rt), dynamic_(rt.settings.bootstrap.dcs) {}

void Observer::apply_dynamic_config() {
    if (!cluster_ || !cluster_->config_json || *cluster_->config_json == applied_config_json_) {
        return;
    }
    applied_config_json_ = *cluster_->config_json;
    auto parsed = config::parse_dynamic_json(*cluster_->config_json, dynamic_);
    for (const auto& p : parsed.problems) {
        if (p.severity == config::Problem::Severity::Error) {
            spdlog::error(
                "dynamic configuration: {}: {}; keeping the last good value", p.path, p.message);
        } else {
            spdlog::warn("dynamic configuration: {}: {}", p.path, p.message);
        }
    }
    std::vector<std::string> unsupported;
    for (const auto& p : config::unsupported_dynamic(parsed.settings)) {
        std::string line = p.path + ": " + p.message;
        if (p.severity == config::Problem::Severity::Error) {
            spdlog::error("dynamic configuration: {}", line);
        } else {
            spdlog::warn("dynamic configuration: {}", line);
        }
        unsupported.push_back(std::move(line));
    }
    unsupported_ = std::move(unsupported);
    const bool timing_changed = parsed.settings.ttl != dynamic_.ttl ||
                                parsed.settings.loop_wait != dynamic_.loop_wait ||
                                parsed.settings.retry_timeout != dynamic_.retry_timeout;
    dynamic_ = parsed.settings;
    if (timing_changed) {
        spdlog::info("dynamic configuration: ttl={} loop_wait={} retry_timeout={}",
                     dynamic_.ttl,
                     dynamic_.loop_wait,
                     dynamic_.retry_timeout);
        rt_.dcs.set_timing({dynamic_.ttl, dynamic_.loop_wait, dynamic_.retry_timeout});
    }
}

net::awaitable<core::Observation> Observer::observe() {
    auto cluster = co_await rt_.dcs.get_cluster();
    if (cluster) {
        if (dcs_failed_) {
            spdlog::info("the DCS answers again");
        }
        dcs_failed_ = false;
        cluster_ = std::move(*cluster);
        last_good_cluster_ = std::make_shared<const core::Cluster>(*cluster_);
        cluster_read_at_ = rt_.now();
        dcs_last_seen_ = rt_.now_epoch_ms() / 1000;
        if (cluster_->is_locked()) {
            old_members_ = cluster_->members;
        }
        apply_dynamic_config();
    } else {
        if (!dcs_failed_) {
            spdlog::warn("DCS read failed: {}", cluster.error().message());
        } else {
            spdlog::debug("DCS read failed: {}", cluster.error().message());
        }
        dcs_failed_ = true;
        cluster_.reset();
    }
    pg_ = co_await rt_.pg.observe();

    core::Observation o;
    o.now = rt_.now();
    o.now_epoch_ms = rt_.now_epoch_ms();
    o.name = rt_.settings.name;
    o.dynamic = dynamic_;
    o.tags = rt_.settings.tags;
    o.use_pg_rewind =
        rt_.settings.postgresql.use_pg_rewind.value_or(dynamic_.postgresql.use_pg_rewind);
    o.remove_data_directory_on_rewind_failure =
        rt_.settings.postgresql.remove_data_directory_on_rewind_failure;
    o.remove_data_directory_on_diverged_timelines =
        rt_.settings.postgresql.remove_data_directory_on_diverged_timelines;
    o.cluster = cluster_;
    o.pg = pg_;
    if (cluster_ && cluster_->failover && cluster_->failover->scheduled_at) {
        o.failover_scheduled_at_ms = core::parse_iso8601_ms(*cluster_->failover->scheduled_at);
        o.failover_schedule_invalid = !o.failover_scheduled_at_ms;
    }
    if (const auto& sr = rt_.bridge.scheduled_restart(); sr && sr->schedule) {
        o.restart_scheduled = true;
        o.restart_scheduled_at_ms = core::parse_iso8601_ms(*sr->schedule);
    }
    o.requests = rt_.bridge.take_requests();
    const int version = pg_.query ? pg_.query->server_version : 150000;
    o.desired_config = files_signature(desired_files(
        rt_.settings, dynamic_, cluster_, rt_.state.role, rt_.state.following, version));
    co_return o;
}

std::vector<core::Member> Observer::members_to_probe() const {
    std::vector<core::Member> out;
    auto add = [&](const core::Member& m) {
        if (m.name == rt_.settings.name || m.api_url.empty()) {
            return;
        }
        for (const auto& o : out) {
            if (o.name == m.name) {
                return;
            }
        }
        out.push_back(m);
    };
    if (cluster_) {
        for (const auto& m : cluster_->members) {
            add(m);
        }
    }
    for (const auto& m : old_members_) {
        add(m);
    }
    return out;
}

net::awaitable<std::vector<core::MemberProbe>> Observer::probe_members() {
    co_return co_await runtime::probe_members(rt_.ex, members_to_probe(), 2s);
}

}  // namespace pgwarden::runtime
