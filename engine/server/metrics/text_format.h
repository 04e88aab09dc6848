// Escaping and number formatting of the Prometheus text exposition format 0.0.4.
#pragma once

#include <string>
#include <vector>

namespace lorax::metrics {

// HELP text: backslash and newline are escaped.
std::string escape_help(const std::string& s);
// Label values: backslash, double quote and newline are escaped.
std::string escape_label_value(const std::string& s);
// Shortest round-trip decimal; +Inf, -Inf, NaN as Prometheus spells them.
std::string format_value(double v);
// {a="x",b="y"}; extra (name, value) appended last (used for le); empty -> "".
std::string format_labels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                          const char* extra_name = nullptr, const std::string& extra_value = {});
bool valid_metric_name(const std::string& s);
bool valid_label_name(const std::string& s);

}  // namespace lorax::metrics
