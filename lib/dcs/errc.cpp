#include "dcs/errc.hpp"

namespace pgwarden::dcs {
namespace {

class Category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "pgwarden.dcs"; }
    std::string message(int ev) const override {
        switch (static_cast<Errc>(ev)) {
            case Errc::Ok:
                return "ok";
            case Errc::Unavailable:
                return "DCS unavailable";
            case Errc::Timeout:
                return "DCS request timed out";
            case Errc::Unauthorized:
                return "DCS rejected our credentials";
            case Errc::Forbidden:
                return "DCS denied permission";
            case Errc::NotFound:
                return "lease or session not found";
            case Errc::Protocol:
                return "unexpected DCS reply";
            case Errc::BadRequest:
                return "DCS rejected the request";
            case Errc::Cancelled:
                return "cancelled";
        }
        return "unknown DCS error";
    }
};

}  // namespace

const boost::system::error_category& dcs_category() noexcept {
    static const Category category;
    return category;
}

}  // namespace pgwarden::dcs
