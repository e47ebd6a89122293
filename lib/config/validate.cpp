// `pgwarden --validate-config FILE`: prints every problem of the file and the totals.

#include "config/validate.hpp"

#include "config/load.hpp"
#include "config/unsupported.hpp"

namespace pgwarden::config {

int validate_config_file(const std::string& path,
                         const std::map<std::string, std::string>& env,
                         std::ostream& out) {
    const LoadResult result = load_file_checked(path, env);
    int errors = 0;
    int warnings = 0;
    for (const Problem& p : result.problems) {
        out << format_problem(p, path) << '\n';
        if (p.severity == Problem::Severity::Error) {
            ++errors;
        } else {
            ++warnings;
        }
    }
    out << path << ": " << errors << (errors == 1 ? " error" : " errors") << ", " << warnings
        << (warnings == 1 ? " warning" : " warnings")
        << (errors == 0 ? ": configuration is valid" : ": configuration is invalid") << '\n';
    return errors == 0 ? 0 : 2;
}

}  // namespace pgwarden::config
