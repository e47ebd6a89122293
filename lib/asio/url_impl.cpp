// Compiles Boost.URL once for the whole project (its header-only mode: src.hpp in one TU).
#include <boost/url/src.hpp>
