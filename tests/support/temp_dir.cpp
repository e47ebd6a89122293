#include "support/temp_dir.hpp"

#include "support/process.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <pwd.h>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace pgwarden::testing {

TempDir::TempDir(const std::string& tag) {
    std::string pattern = "/tmp/" + tag + "-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) {
        throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    }
    path_ = buf.data();
    chmod(path_.c_str(), 0700);
    const auto user = unprivileged_user();
    if (!user.empty()) {
        if (const struct passwd* pw = getpwnam(user.c_str())) {
            if (chown(path_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
                throw std::runtime_error("chown " + path_ + ": " + std::strerror(errno));
            }
        }
    }
}

TempDir::~TempDir() {
    // PGW_KEEP_TEST_DIRS=1 keeps them (logs, data directories) for a post-mortem.
    if (const char* keep = std::getenv("PGW_KEEP_TEST_DIRS"); keep != nullptr && keep[0] == '1') {
        std::fprintf(stderr, "kept test directory %s\n", path_.c_str());
        return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

}  // namespace pgwarden::testing
