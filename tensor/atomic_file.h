// Writing a file so that it appears complete or not at all.
#pragma once
#include <functional>
#include <ostream>
#include <string>

namespace spear {

// Runs write(out) on a temporary file next to `path`, then renames it over `path`. rename()
// replaces the old file in one step, so an error, a crash or a SIGKILL never leaves a
// half-written `path`: readers see the old file or the new one. Throws IOError (prefixed with
// `op` and naming the path) on any failure, after removing the temporary file.
void write_file_atomically(const char* op, const std::string& path,
                           const std::function<void(std::ostream&)>& write);

}  // namespace spear
