// A temporary directory under /tmp, removed recursively by the destructor. When the test runs
// as root it is chowned to unprivileged_user() so servers started with run_as can write it.
#pragma once

#include <string>

namespace pgwarden::testing {

class TempDir {
public:
    explicit TempDir(const std::string& tag = "pgw");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

}  // namespace pgwarden::testing
