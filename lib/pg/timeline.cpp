// Timeline history files (pg_wal/<timeline>.history) of the local data directory.
#include "pg/postgres_impl.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace pgwarden::pg {

namespace fs = std::filesystem;

Task<Result<std::vector<core::HistoryLine>>> Postgres::read_timeline_history(int timeline) {
    Impl& d = *impl_;
    char name[32];
    std::snprintf(name, sizeof name, "%08X.history", static_cast<unsigned>(timeline));
    const fs::path file = d.data_dir() / "pg_wal" / name;
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        int e = errno;
        std::error_code ec;
        if (!fs::exists(file, ec)) {
            co_return std::vector<core::HistoryLine>{};
        }
        spdlog::warn("pg: cannot read {}: {}", file.string(), detail::errno_text(e));
        co_return Result<std::vector<core::HistoryLine>>(
            boost::system::in_place_error,
            boost::system::error_code(e != 0 ? e : EIO, boost::system::generic_category()));
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    co_return parse_timeline_history(ss.str());
}

}  // namespace pgwarden::pg
