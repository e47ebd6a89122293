// Every reason sentence the core can produce is asserted verbatim somewhere: each string literal
// of lib/core/decide*.cpp and step.cpp that looks like words (12 characters or more, with a
// space) must appear in a scenario file (tests/scenarios/*.yaml) or in a string literal of a core
// unit test (tests/unit/core/*.cpp). A sentence built from several pieces is covered piece by
// piece: each literal piece must appear in an asserted sentence.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

// Literals of the core that are not (parts of) reason sentences.
const std::set<std::string> kNotReasons = {
    // to_string(ActionKind): action names, for logs and scenario files (as "acquire-lock").
    "acquire lock",
    "release lock",
    "write initialize",
    "write config",
    "start primary",
    "probe members",
    "create replica",
    "start replica",
    "clear failover",
    "advance slots",
    "write history",
    "clear scheduled restart",
    "wait for candidate",
    // pg_control's "Database cluster state" values.
    "in production",
    "in crash recovery",
};

std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

struct Literal {
    int line = 0;
    std::string text;
};

// The string literals of a C++ source, with adjacent literals joined as the compiler joins them
// ("a " "b" is "a b") and escapes resolved; comments and character literals are skipped.
std::vector<Literal> string_literals(const std::string& src) {
    std::vector<Literal> out;
    bool joinable = false;  // only whitespace and comments since the last literal ended
    int line = 1;
    std::size_t i = 0;
    const std::size_t n = src.size();
    while (i < n) {
        const char c = src[i];
        if (c == '\n') {
            ++line;
            ++i;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            ++i;
        } else if (c == '/' && i + 1 < n && src[i + 1] == '/') {
            while (i < n && src[i] != '\n') {
                ++i;
            }
        } else if (c == '/' && i + 1 < n && src[i + 1] == '*') {
            i += 2;
            while (i + 1 < n && !(src[i] == '*' && src[i + 1] == '/')) {
                line += src[i] == '\n';
                ++i;
            }
            i += 2;
        } else if (c == '"' || c == '\'') {
            std::string text;
            ++i;
            while (i < n && src[i] != c) {
                if (src[i] == '\\' && i + 1 < n) {
                    ++i;
                    text += src[i] == 'n' ? '\n' : src[i] == 't' ? '\t' : src[i];
                } else {
                    text += src[i];
                }
                ++i;
            }
            ++i;
            if (c == '\'') {
                joinable = false;
            } else if (joinable && !out.empty()) {
                out.back().text += text;
            } else {
                out.push_back({line, text});
                joinable = true;
            }
            continue;
        } else {
            joinable = false;
            ++i;
        }
    }
    return out;
}

bool looks_like_words(const std::string& s) {
    return s.size() >= 12 && s.find(' ') != std::string::npos;
}

std::vector<fs::path> files_in(const fs::path& dir, const std::string& extension) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().extension() == extension) {
            files.push_back(e.path());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

// Everything the tests assert: the scenario files as text, and the core tests' literals.
std::string asserted_text() {
    const fs::path root = PGW_SOURCE_DIR;
    std::string all;
    for (const auto& f : files_in(root / "tests/scenarios", ".yaml")) {
        all += read(f) + "\n";
    }
    for (const auto& f : files_in(root / "tests/unit/core", ".cpp")) {
        if (f.filename() == "reason_coverage_test.cpp") {
            continue;  // its allowlist asserts nothing
        }
        for (const auto& l : string_literals(read(f))) {
            all += l.text + "\n";
        }
    }
    return all;
}

std::vector<fs::path> reason_sources() {
    const fs::path core = fs::path(PGW_SOURCE_DIR) / "lib/core";
    std::vector<fs::path> files;
    for (const auto& f : files_in(core, ".cpp")) {
        const std::string name = f.filename().string();
        if (name.rfind("decide", 0) == 0 || name == "step.cpp") {
            files.push_back(f);
        }
    }
    return files;
}

}  // namespace

TEST_CASE("reason coverage: the literal scanner joins adjacent literals and skips comments",
          "[core][reasons]") {
    const auto lits = string_literals(
        "// \"not this\"\n"
        "x = \"starting as \" /* c */ \"a secondary\" + name + \" in \\\"progress\\\"\";\n"
        "c = '\"'; d = \"after a char literal\";\n");
    REQUIRE(lits.size() == 3);
    CHECK(lits[0].text == "starting as a secondary");
    CHECK(lits[0].line == 2);
    CHECK(lits[1].text == " in \"progress\"");
    CHECK(lits[2].text == "after a char literal");
    CHECK(looks_like_words("starting as a secondary"));
    CHECK_FALSE(looks_like_words("update lock"));
    CHECK_FALSE(looks_like_words("primary_start_timeout"));
}

TEST_CASE("reason coverage: every reason literal of decide*.cpp and step.cpp is asserted",
          "[core][reasons]") {
    const std::string asserted = asserted_text();
    const auto sources = reason_sources();
    REQUIRE(sources.size() >= 3);  // decide.cpp, decide_failover.cpp, step.cpp
    std::size_t checked = 0;
    std::set<std::string> allow_used;
    for (const auto& f : sources) {
        for (const auto& l : string_literals(read(f))) {
            if (!looks_like_words(l.text)) {
                continue;
            }
            if (kNotReasons.count(l.text)) {
                allow_used.insert(l.text);
                continue;
            }
            ++checked;
            if (asserted.find(l.text) == std::string::npos) {
                FAIL_CHECK(f.filename().string() + ":" + std::to_string(l.line) + ": \"" + l.text +
                           "\" is not asserted in tests/scenarios/*.yaml or tests/unit/core/*.cpp");
            }
        }
    }
    // The scan found the sentences (it cannot pass by finding nothing).
    CHECK(checked >= 80);
    // A stale allowlist entry would hide a future reason with the same words.
    for (const auto& a : kNotReasons) {
        if (!allow_used.count(a)) {
            FAIL_CHECK("allowlist entry \"" + a + "\" no longer occurs in the core's sources");
        }
    }
}
