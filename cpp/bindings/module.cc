// pagedllm._core: the pybind11 module. Glue only (DESIGN.md rule 5).
#include <pybind11/pybind11.h>

#include "pagedllm/version.h"

namespace py = pybind11;

namespace pagedllm {
void bind_engine(py::module_& m);
}

PYBIND11_MODULE(_core, m) {
  m.doc() = "pagedllm C++ engine";
  m.attr("__version__") = PAGEDLLM_VERSION;
  pagedllm::bind_engine(m);
}
