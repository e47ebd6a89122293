// Postmaster supervision: is a postmaster alive for our data directory (postmaster.pid +
// /proc), tracking it through the process runner's SIGCHLD, leftovers of a killed one.
#include "pg/postgres_impl.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <sys/wait.h>
#include <unistd.h>

namespace pgwarden::pg {

namespace net = boost::asio;
namespace fs = std::filesystem;
using detail::read_small_file;

Postgres::Impl::PostmasterCheck Postgres::Impl::check_postmaster() const {
    PostmasterCheck pc;
    auto content = read_small_file(data_dir() / "postmaster.pid");
    if (!content) {
        return pc;
    }
    pc.pid = parse_postmaster_pid(*content);
    if (!pc.pid) {
        return pc;
    }
    auto stat = read_small_file("/proc/" + std::to_string(*pc.pid) + "/stat");
    if (!stat) {
        return pc;
    }
    auto ps = parse_proc_stat(*stat);
    if (!ps || ps->state == 'Z' || ps->state == 'X' || ps->state == 'x') {
        return pc;  // a zombie is not a running postmaster
    }
    bool tracked = runner->watching(*pc.pid);
    pc.alive = tracked || ps->comm == "postgres" || ps->comm == "postmaster";
    pc.our_child = ps->ppid == static_cast<int>(::getpid());
    return pc;
}

void Postgres::Impl::track_postmaster(int pid, bool our_child) {
    if (pm_pid == pid && (pm_watched || !our_child)) {
        return;
    }
    if (pm_pid && pm_watched) {
        runner->unwatch(*pm_pid);
    }
    pm_pid = pid;
    pm_watched = our_child;
    if (our_child) {
        std::weak_ptr<int> alive = life;
        runner->watch(pid, [this, alive, pid](int status) {
            if (!alive.expired()) {
                postmaster_exited(pid, status);
            }
        });
    }
    spdlog::debug("pg: tracking postmaster pid={} ({})",
                  pid,
                  our_child ? "our child, SIGCHLD" : "not our child, polled");
}

void Postgres::Impl::postmaster_exited(int pid, std::optional<int> status) {
    if (pm_pid != pid) {
        return;
    }
    pm_pid.reset();
    pm_watched = false;
    if (!status) {
        spdlog::warn("pg: postmaster pid={} is gone", pid);
    } else if (WIFSIGNALED(*status)) {
        spdlog::warn("pg: postmaster pid={} was killed by signal {}", pid, WTERMSIG(*status));
    } else {
        spdlog::info("pg: postmaster pid={} exited with code {}", pid, WEXITSTATUS(*status));
    }
    if (on_postmaster_exit) {
        on_postmaster_exit();
    }
}

int Postgres::Impl::leftover_backends() const {
    std::error_code ec;
    fs::path dd = fs::weakly_canonical(data_dir(), ec);
    int count = 0;
    for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) {
            continue;
        }
        auto stat = read_small_file(it->path() / "stat");
        auto ps = stat ? parse_proc_stat(*stat) : std::nullopt;
        if (!ps || ps->state == 'Z' || ps->state == 'X' || ps->comm != "postgres") {
            continue;
        }
        std::error_code lec;
        fs::path cwd = fs::read_symlink(it->path() / "cwd", lec);
        if (!lec && cwd == dd) {
            ++count;
        }
    }
    return count;
}

net::awaitable<void> Postgres::Impl::sleep_for(std::chrono::milliseconds d) {
    net::steady_timer t(ex, d);
    co_await t.async_wait(net::as_tuple(net::use_awaitable));
}

std::optional<int> Postgres::postmaster_pid() const {
    auto pc = impl_->check_postmaster();
    if (pc.alive) {
        return pc.pid;
    }
    return std::nullopt;
}

void Postgres::start_supervision(std::function<void()> on_postmaster_exit) {
    impl_->on_postmaster_exit = std::move(on_postmaster_exit);
    impl_->runner->become_subreaper();
    impl_->runner->start_reaping();
    auto pc = impl_->check_postmaster();
    if (pc.alive && pc.pid) {
        impl_->track_postmaster(*pc.pid, pc.our_child);
    }
}

}  // namespace pgwarden::pg
