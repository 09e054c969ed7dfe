// Long-Range Arena's released ListOps files (lra_release/listops-1000/basic_{train,val,test}.tsv):
// a header line, then one example per line, Source and Target separated by a tab:
//
//   Source<TAB>Target
//   ( ( ( ( [MAX 2 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )<TAB>4
//
// Source is the expression as LRA's generator prints its nested pairs; Target its value, 0-9.
// Tokenisation follows LRA's current input pipeline: the parentheses are dropped and the rest
// split at whitespace, `]` included (LRA renames it X first; here it is the `]` token), giving
// `[MAX 2 [MIN 4 7 ] 0 ]`. Lines may end in "\r\n" (Python's csv writer) or "\n"; blank lines are
// skipped.
#pragma once
#include <string>
#include <vector>

#include "examples/train/tasks.h"

namespace spear::train {

// The examples of one file, in file order: inputs CLS + the expression's ids, targets {label}.
// Throws IOError naming the file (and the line, "FILE:LINE: ...") when it cannot be read, lacks
// the header, or has a line without a tab, with an empty Source, an unknown token, or a Target
// that is not a label 0-9.
std::vector<Example> read_listops_tsv(const std::string& path);

}  // namespace spear::train
